//! The four webhook kinds' own settings: parsed from a create or change request with an error
//! naming the field, stored as JSON, and read back typed by the triggers and renderers.

use fleethook_wire::catalog;
use fleethook_wire::units::UnitSystem;
use fleethook_wire::v2::V2Path;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::WebhookKind;

/// Cadence unit of a scheduled webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Frequency {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "minutely" => Some(Frequency::Minutely),
            "hourly" => Some(Frequency::Hourly),
            "daily" => Some(Frequency::Daily),
            "weekly" => Some(Frequency::Weekly),
            "monthly" => Some(Frequency::Monthly),
            _ => None,
        }
    }

    /// The largest interval that still makes sense for this unit.
    fn max_interval(self) -> u32 {
        match self {
            Frequency::Minutely => 1440,
            Frequency::Hourly => 168,
            Frequency::Daily => 31,
            Frequency::Weekly => 52,
            Frequency::Monthly => 12,
        }
    }
}

/// When a scheduled webhook is due, in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub frequency: Frequency,
    pub interval: u32,
    /// Weekly: ISO weekday 1 (Monday) to 7; monthly: day of month 1 to 31 (the last day of a
    /// shorter month).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<u32>,
    /// Daily, weekly, monthly: `HH:MM` UTC (default `00:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// The diagnostics event an eventBased webhook listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiagnosticEvent {
    DiagnosticTroubleCodes,
    DiagnosticSystemAlerts,
}

/// The kind fields, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum KindConfig {
    Scheduled {
        schedule: Schedule,
        endpoints: Vec<V2Path>,
        units: UnitSystem,
    },
    Dynamic,
    EventBased {
        event: DiagnosticEvent,
    },
    VehicleState {
        triggers: Vec<String>,
        data: Vec<String>,
    },
}

/// The field names each kind owns (anything else in a request is refused by name).
pub fn kind_fields(kind: WebhookKind) -> &'static [&'static str] {
    match kind {
        WebhookKind::Scheduled => &["schedule", "endpoints", "units"],
        WebhookKind::Dynamic => &[],
        WebhookKind::EventBased => &["events"],
        WebhookKind::VehicleState => &["triggers", "data", "errorCallbackUri"],
    }
}

type FieldResult<T> = Result<T, String>;

impl KindConfig {
    /// Parses the kind fields of a request body (`fields` holds only the request's kind
    /// fields). Errors name the field: "schedule.interval must be …".
    pub fn parse(kind: WebhookKind, fields: &Map<String, Value>) -> FieldResult<KindConfig> {
        match kind {
            WebhookKind::Scheduled => {
                let schedule =
                    parse_schedule(fields.get("schedule").ok_or("schedule is required")?)?;
                let endpoints =
                    parse_endpoints(fields.get("endpoints").ok_or("endpoints is required")?)?;
                let units = match fields.get("units") {
                    None | Some(Value::Null) => UnitSystem::Metric,
                    Some(Value::String(s)) => {
                        UnitSystem::parse(s).ok_or("units must be \"metric\" or \"imperial\"")?
                    }
                    Some(_) => return Err("units must be \"metric\" or \"imperial\"".into()),
                };
                Ok(KindConfig::Scheduled {
                    schedule,
                    endpoints,
                    units,
                })
            }
            WebhookKind::Dynamic => Ok(KindConfig::Dynamic),
            WebhookKind::EventBased => {
                let events = fields
                    .get("events")
                    .ok_or("events is required")?
                    .as_array()
                    .ok_or("events must be an array with one event type")?;
                if events.len() != 1 {
                    return Err("events must hold exactly one of DIAGNOSTIC_TROUBLE_CODES, DIAGNOSTIC_SYSTEM_ALERTS (create a second webhook for the other)".into());
                }
                let event = match events[0].as_str() {
                    Some("DIAGNOSTIC_TROUBLE_CODES") => DiagnosticEvent::DiagnosticTroubleCodes,
                    Some("DIAGNOSTIC_SYSTEM_ALERTS") => DiagnosticEvent::DiagnosticSystemAlerts,
                    _ => return Err(
                        "events[0] must be DIAGNOSTIC_TROUBLE_CODES or DIAGNOSTIC_SYSTEM_ALERTS"
                            .into(),
                    ),
                };
                Ok(KindConfig::EventBased { event })
            }
            WebhookKind::VehicleState => {
                let triggers = parse_signal_codes(
                    "triggers",
                    fields.get("triggers").ok_or("triggers is required")?,
                )?;
                if triggers.is_empty() {
                    return Err("triggers must name at least one signal code".into());
                }
                let data = match fields.get("data") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => parse_signal_codes("data", v)?,
                };
                Ok(KindConfig::VehicleState { triggers, data })
            }
        }
    }

    /// The stored and displayed form (the kind fields as JSON, errorCallbackUri aside).
    pub fn to_json(&self) -> Value {
        match self {
            KindConfig::Scheduled {
                schedule,
                endpoints,
                units,
            } => serde_json::json!({
                "schedule": schedule,
                "endpoints": endpoints.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "units": units.as_str(),
            }),
            KindConfig::Dynamic => Value::Object(Map::new()),
            KindConfig::EventBased { event } => serde_json::json!({ "events": [event] }),
            KindConfig::VehicleState { triggers, data } => serde_json::json!({
                "triggers": triggers,
                "data": data,
            }),
        }
    }

    /// Reads a stored config back; the store only holds configs this module wrote.
    pub fn from_stored(kind: WebhookKind, stored: &Value) -> FieldResult<KindConfig> {
        // Borrowed, not cloned: every render of a change reads its webhook's config.
        match stored.as_object() {
            Some(fields) => KindConfig::parse(kind, fields),
            None => KindConfig::parse(kind, &Map::new()),
        }
    }

    /// Every signal of a vehicleState webhook in payload order: triggers, then data, each once.
    pub fn vehicle_state_signals(&self) -> Vec<String> {
        match self {
            KindConfig::VehicleState { triggers, data } => {
                let mut all: Vec<String> = Vec::with_capacity(triggers.len() + data.len());
                for code in triggers.iter().chain(data) {
                    if !all.contains(code) {
                        all.push(code.clone());
                    }
                }
                all
            }
            _ => Vec::new(),
        }
    }
}

fn parse_schedule(value: &Value) -> FieldResult<Schedule> {
    let obj = value.as_object().ok_or("schedule must be an object")?;
    for key in obj.keys() {
        if !["frequency", "interval", "day", "time"].contains(&key.as_str()) {
            return Err(format!(
                "schedule.{key} is not a schedule field (frequency, interval, day, time)"
            ));
        }
    }
    let frequency = obj
        .get("frequency")
        .and_then(Value::as_str)
        .and_then(Frequency::parse)
        .ok_or("schedule.frequency must be one of minutely, hourly, daily, weekly, monthly")?;
    let interval = match obj.get("interval") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1 && *n <= frequency.max_interval() as u64)
            .ok_or_else(|| {
                format!(
                    "schedule.interval must be a whole number from 1 to {}",
                    frequency.max_interval()
                )
            })? as u32,
    };
    let day = match (frequency, obj.get("day")) {
        (_, None | Some(Value::Null)) => None,
        (Frequency::Weekly, Some(v)) => Some(parse_weekday(v)?),
        (Frequency::Monthly, Some(v)) => Some(
            v.as_u64()
                .filter(|d| (1..=31).contains(d))
                .ok_or("schedule.day must be a day of the month from 1 to 31")? as u32,
        ),
        (_, Some(_)) => return Err("schedule.day is only for weekly and monthly schedules".into()),
    };
    let day = match (frequency, day) {
        (Frequency::Weekly | Frequency::Monthly, None) => Some(1),
        (_, day) => day,
    };
    let time = match (frequency, obj.get("time")) {
        (_, None | Some(Value::Null)) => None,
        (Frequency::Minutely | Frequency::Hourly, Some(_)) => {
            return Err("schedule.time is only for daily, weekly and monthly schedules".into())
        }
        (_, Some(v)) => Some(parse_time(v)?),
    };
    Ok(Schedule {
        frequency,
        interval,
        day,
        time,
    })
}

fn parse_weekday(value: &Value) -> FieldResult<u32> {
    const DAYS: [&str; 7] = [
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ];
    let err = "schedule.day must be a weekday (MONDAY … SUNDAY, or 1 to 7 with 1 = Monday)";
    match value {
        Value::Number(n) => n
            .as_u64()
            .filter(|d| (1..=7).contains(d))
            .map(|d| d as u32)
            .ok_or(err.into()),
        Value::String(s) => DAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + 1)
            .ok_or(err.into()),
        _ => Err(err.into()),
    }
}

fn parse_time(value: &Value) -> FieldResult<String> {
    let err = || "schedule.time must be HH:MM in UTC (00:00 to 23:59)".to_string();
    let s = value.as_str().ok_or_else(err)?;
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if s.len() != 5 || h > 23 || m > 59 {
        return Err(err());
    }
    Ok(format!("{h:02}:{m:02}"))
}

fn parse_endpoints(value: &Value) -> FieldResult<Vec<V2Path>> {
    let list = value
        .as_array()
        .ok_or("endpoints must be an array of paths such as \"/battery\"")?;
    if list.is_empty() {
        return Err("endpoints must name at least one path".into());
    }
    let mut paths = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let path = item.as_str().and_then(V2Path::parse).ok_or_else(|| {
            let known: Vec<&str> = V2Path::all().iter().map(|p| p.as_str()).collect();
            format!("endpoints[{i}] must be one of {}", known.join(", "))
        })?;
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    Ok(paths)
}

fn parse_signal_codes(field: &str, value: &Value) -> FieldResult<Vec<String>> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("{field} must be an array of signal codes"))?;
    let mut codes: Vec<String> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let code = item
            .as_str()
            .ok_or_else(|| format!("{field}[{i}] must be a signal code string"))?;
        if catalog::lookup(code).is_none() {
            return Err(format!("{field}[{i}]: unknown signal code {code:?}"));
        }
        if !codes.iter().any(|c| c == code) {
            codes.push(code.to_string());
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: WebhookKind, v: Value) -> FieldResult<KindConfig> {
        KindConfig::parse(kind, v.as_object().unwrap())
    }

    #[test]
    fn scheduled_fields_are_checked_by_name() {
        let ok = parse(
            WebhookKind::Scheduled,
            json!({"schedule":{"frequency":"hourly","interval":2},"endpoints":["/battery","/location"],"units":"imperial"}),
        )
        .unwrap();
        assert_eq!(
            ok.to_json(),
            json!({"schedule":{"frequency":"hourly","interval":2},"endpoints":["/battery","/location"],"units":"imperial"})
        );
        let cases = [
            (json!({"endpoints":["/battery"]}), "schedule is required"),
            (
                json!({"schedule":{"frequency":"yearly"},"endpoints":["/battery"]}),
                "schedule.frequency",
            ),
            (
                json!({"schedule":{"frequency":"hourly","interval":0},"endpoints":["/battery"]}),
                "schedule.interval",
            ),
            (
                json!({"schedule":{"frequency":"hourly","day":3},"endpoints":["/battery"]}),
                "schedule.day",
            ),
            (
                json!({"schedule":{"frequency":"daily","time":"25:00"},"endpoints":["/battery"]}),
                "schedule.time",
            ),
            (
                json!({"schedule":{"frequency":"daily"},"endpoints":[]}),
                "endpoints",
            ),
            (
                json!({"schedule":{"frequency":"daily"},"endpoints":["/nope"]}),
                "endpoints[0]",
            ),
            (
                json!({"schedule":{"frequency":"daily"},"endpoints":["/battery"],"units":"kelvin"}),
                "units",
            ),
        ];
        for (body, field) in cases {
            let err = parse(WebhookKind::Scheduled, body.clone()).unwrap_err();
            assert!(err.contains(field), "{body}: {err}");
        }
    }

    #[test]
    fn weekdays_parse_by_name_and_monthly_days_default_to_the_first() {
        let weekly = parse(
            WebhookKind::Scheduled,
            json!({"schedule":{"frequency":"weekly","day":"friday","time":"07:30"},"endpoints":["/odometer"]}),
        )
        .unwrap();
        let KindConfig::Scheduled { schedule, .. } = weekly else {
            unreachable!()
        };
        assert_eq!(
            (schedule.day, schedule.time.as_deref()),
            (Some(5), Some("07:30"))
        );
        let monthly = parse(
            WebhookKind::Scheduled,
            json!({"schedule":{"frequency":"monthly"},"endpoints":["/odometer"]}),
        )
        .unwrap();
        let KindConfig::Scheduled { schedule, .. } = monthly else {
            unreachable!()
        };
        assert_eq!(schedule.day, Some(1));
    }

    #[test]
    fn event_based_takes_exactly_one_event() {
        assert!(parse(
            WebhookKind::EventBased,
            json!({"events":["DIAGNOSTIC_TROUBLE_CODES"]})
        )
        .is_ok());
        assert!(parse(WebhookKind::EventBased, json!({"events":[]})).is_err());
        assert!(parse(
            WebhookKind::EventBased,
            json!({"events":["DIAGNOSTIC_TROUBLE_CODES","DIAGNOSTIC_SYSTEM_ALERTS"]})
        )
        .is_err());
        assert!(parse(WebhookKind::EventBased, json!({"events":["OTHER"]})).is_err());
    }

    #[test]
    fn vehicle_state_signals_are_catalog_codes_triggers_first_each_once() {
        let config = parse(
            WebhookKind::VehicleState,
            json!({"triggers":["tractionbattery-stateofcharge"],"data":["location-preciselocation","tractionbattery-stateofcharge"]}),
        )
        .unwrap();
        assert_eq!(
            config.vehicle_state_signals(),
            vec!["tractionbattery-stateofcharge", "location-preciselocation"]
        );
        let err = parse(WebhookKind::VehicleState, json!({"triggers":["nope-nope"]})).unwrap_err();
        assert!(err.contains("triggers[0]"), "{err}");
        assert!(parse(WebhookKind::VehicleState, json!({"triggers":[]})).is_err());
    }
}

//! The dashboard in real headless Chromium, used as a new user would: sign in, create a
//! webhook of each kind pointing at a local receiver, verify it, send a test, read the
//! delivery and its attempts, retry it and watch the chart count it; see clear messages for a
//! wrong token, a failing verification and an invalid form; subscribe a vehicle and read its
//! page at a phone's width. Each test leaves screenshots in `target/screenshots/`.

mod browser;
mod common;

use browser::Browser;
use common::{Receiver, TestServer};
use serde_json::json;

/// Signs in with `token` from the page at `/`.
async fn sign_in(browser: &Browser, server: &TestServer, token: &str) {
    browser.goto(&server.url("/")).await;
    browser.heading("Sign in").await;
    browser.fill("Management token", token).await;
    browser.click_button("Sign in").await;
}

/// The kind's label in the wizard and what to fill in for it.
async fn fill_kind_fields(browser: &Browser, kind: &str) {
    match kind {
        "scheduled" => {
            // Hourly, /battery and /location, metric are the defaults; add the odometer.
            browser.select("Frequency", "hourly").await;
            browser
                .tick("//fieldset[@data-field='endpoints']", "/odometer")
                .await;
        }
        "eventBased" => browser.tick("", "Diagnostic trouble codes").await,
        "vehicleState" => {
            browser
                .select("Trigger signals: signal group", "TractionBattery")
                .await;
            browser
                .tick("//fieldset[@data-field='triggers']", "StateOfCharge")
                .await;
            browser
                .select("Data signals: signal group", "Location")
                .await;
            browser
                .tick("//fieldset[@data-field='data']", "PreciseLocation")
                .await;
        }
        _ => {}
    }
}

/// Clicks Verify and reads the result, which shows what Smartcar's dashboard shows.
async fn verify(browser: &Browser, outcome: &str) -> String {
    browser.click_button("Verify").await;
    let result = browser
        .wait_text(".verify-result", outcome)
        .await
        .text()
        .await
        .expect("verify result");
    for part in ["Challenge sent", "Hash expected", "Body received"] {
        assert!(result.contains(part), "{part}: {result}");
    }
    result
}

const OUTCOMES: &str = "figure.chart-outcomes";

#[tokio::test]
async fn a_new_user_creates_verifies_tests_and_retries_a_webhook_of_each_kind() {
    let server = TestServer::start_live().await;
    let receiver = Receiver::start(Some(&server.token)).await;
    let browser = Browser::start(1280, 1000).await;

    sign_in(&browser, &server, &server.token).await;
    browser.heading("Webhooks").await;
    browser.wait_text("main", "No webhooks yet").await;

    for (kind, label) in [
        ("scheduled", "Scheduled"),
        ("dynamic", "Dynamic"),
        ("eventBased", "Event-based"),
        ("vehicleState", "Vehicle state"),
    ] {
        let name = format!("{label} hook");
        browser.click_link("Webhooks").await;
        browser.heading("Webhooks").await;
        browser.click_link("New webhook").await;
        browser.heading("New webhook").await;
        browser
            .wait_xpath(&format!(
                "//fieldset[@data-field='type']//label[.//strong[normalize-space()='{label}']]//input"
            ))
            .await
            .click()
            .await
            .expect("pick the kind");
        browser.fill("Name", &name).await;
        browser
            .fill("Callback URI", &receiver.url(&format!("/ok/{kind}")))
            .await;
        fill_kind_fields(&browser, kind).await;
        browser.screenshot(&format!("wizard-{kind}")).await;
        browser.click_button("Create webhook").await;

        // The new webhook's page: unverified until the challenge is answered.
        browser.heading(&name).await;
        browser.wait_text(".badge", "unverified").await;
        verify(&browser, "Verified").await;
        browser.wait_text(".badge", "enabled").await;

        // A test payload arrives and shows in the log as succeeded, with the chart counting
        // the challenge and the test.
        browser.click_button("Send test").await;
        browser
            .wait_xpath(
                "//section[contains(@class,'delivery-log')]//tr[td[normalize-space()='test']]//span[contains(@class,'badge') and normalize-space()='succeeded']",
            )
            .await;
        let before: i64 = browser
            .wait_attr(OUTCOMES, "data-attempts", |v| {
                v.parse::<i64>().unwrap_or(0) >= 2
            })
            .await
            .parse()
            .expect("a count");

        // The delivery: its body, its attempt, and a retry that adds a second attempt.
        browser
            .wait_xpath(
                "//section[contains(@class,'delivery-log')]//tr[td[normalize-space()='test']]//a",
            )
            .await
            .click()
            .await
            .expect("open the delivery");
        browser.wait_text("h1", "Delivery:").await;
        browser.wait_xpath("//tr[@data-attempt='1']").await;
        let body = browser.wait_text("pre.payload", "webhookId").await;
        let body = body.text().await.expect("body");
        assert!(body.contains("\n  "), "the body is pretty-printed: {body}");
        browser.click_button("Retry now").await;
        browser.wait_xpath("//tr[@data-attempt='2']").await;
        browser.wait_text("#notice", "attempt 2 succeeded").await;
        browser
            .wait_xpath("//tr[@data-attempt='1']//summary[normalize-space()='Request headers']")
            .await
            .click()
            .await
            .expect("open the request headers");
        browser
            .wait_text("tr[data-attempt='1'] pre", "SC-Signature: ")
            .await;
        browser.screenshot(&format!("delivery-{kind}")).await;

        // Back on the webhook, the chart has counted the retry.
        browser.click_link("open the webhook").await;
        browser.heading(&name).await;
        browser
            .wait_attr(OUTCOMES, "data-attempts", |v| {
                v.parse::<i64>().unwrap_or(0) > before
            })
            .await;
        browser.screenshot(&format!("webhook-{kind}")).await;
    }

    // The list shows all four, enabled, with success rates from the charts' data.
    browser.click_link("Webhooks").await;
    browser.heading("Webhooks").await;
    for label in [
        "Scheduled hook",
        "Dynamic hook",
        "Event-based hook",
        "Vehicle state hook",
    ] {
        browser
            .wait_xpath(&format!(
                "//tr[td/a[normalize-space()='{label}']]//span[normalize-space()='enabled']"
            ))
            .await;
    }
    browser.wait_text("td.num", "100 % of").await;
    browser
        .wait_attr(OUTCOMES, "data-attempts", |v| v == "12")
        .await;
    browser.screenshot("webhooks-list").await;
    browser.quit().await;
    server.server.stop().await;
}

#[tokio::test]
async fn a_wrong_token_a_failing_verification_and_an_invalid_form_show_clear_messages() {
    let server = TestServer::start_live().await;
    let receiver = Receiver::start(Some(&server.token)).await;
    let browser = Browser::start(1280, 1000).await;

    // A wrong token: refused on the sign-in page, in the API's words.
    sign_in(&browser, &server, "amt_not-the-token").await;
    let alert = browser.wait_text("[role=alert]", "not accepted").await;
    let text = alert.text().await.expect("alert text");
    assert!(text.contains("invalid management token"), "{text}");
    browser.screenshot("signin-wrong-token").await;

    // Every control of the wizard has a label.
    sign_in(&browser, &server, &server.token).await;
    browser.heading("Webhooks").await;
    browser.click_link("New webhook").await;
    browser.heading("New webhook").await;
    let unlabelled = browser
        .eval(
            "return [...document.querySelectorAll('main input, main select')]\
             .filter(e => !e.labels.length && !e.getAttribute('aria-label')).length",
        )
        .await;
    assert_eq!(unlabelled, json!(0), "controls without a label");

    // An invalid form: the API's message, beside the field it names.
    browser
        .tick("//fieldset[@data-field='type']", "Vehicle state")
        .await;
    browser.fill("Name", "bad one").await;
    browser.fill("Callback URI", "not a url").await;
    browser.click_button("Create webhook").await;
    browser
        .wait_text("[role=alert]", "The webhook was not created: callbackUri")
        .await;
    let invalid = browser.control("Callback URI").await;
    assert_eq!(
        invalid.attr("aria-invalid").await.expect("attr"),
        Some("true".into())
    );
    browser.screenshot("wizard-invalid-callback").await;
    browser
        .fill("Callback URI", &receiver.url("/wrong-challenge"))
        .await;
    browser.click_button("Create webhook").await;
    browser
        .wait_text(
            "[role=alert]",
            "triggers must name at least one signal code",
        )
        .await;
    browser.screenshot("wizard-missing-triggers").await;

    // A callback that answers the challenge wrongly: the challenge, the hash expected and the
    // body received, and the webhook stays unverified.
    browser
        .select("Trigger signals: signal group", "TractionBattery")
        .await;
    browser
        .tick("//fieldset[@data-field='triggers']", "StateOfCharge")
        .await;
    browser.click_button("Create webhook").await;
    browser.heading("bad one").await;
    let failed = verify(&browser, "Verification failed").await;
    assert!(
        failed.contains(&"0".repeat(64)),
        "the body received: {failed}"
    );
    browser.wait_text(".badge", "unverified").await;
    browser.screenshot("verify-failed").await;

    // A test payload is refused while unverified, with the reason.
    browser.click_button("Send test").await;
    browser
        .wait_text("[role=alert]", "only enabled webhooks receive payloads")
        .await;
    browser.quit().await;
    server.server.stop().await;
}

#[tokio::test]
async fn subscriptions_and_the_vehicle_page_work_at_a_phone_width() {
    let server = TestServer::start_live().await;
    let receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().expect("vehicle id").to_string();
    server
        .ingest(
            &vehicle_id,
            json!([
                {"code": "tractionbattery-stateofcharge", "body": {"unit": "percent", "value": 78}},
                {"code": "location-preciselocation", "body": {"latitude": 37.77, "longitude": -122.42, "heading": 0, "direction": "N"}},
            ]),
        )
        .await;
    let webhook = server
        .enabled_webhook("vehicleState", &receiver.url("/ok/state"))
        .await;
    let name = webhook["name"].as_str().expect("name").to_string();

    let browser = Browser::start(390, 844).await;
    sign_in(&browser, &server, &server.token).await;
    browser.heading("Webhooks").await;
    browser.click_link(&name).await;
    browser.heading(&name).await;

    // Subscribe from the webhook's page: the first delivery follows.
    browser
        .wait_text("main", "No vehicle is subscribed yet")
        .await;
    browser.click_button("Subscribe").await;
    browser.wait_text("h2", "Subscribed vehicles (1)").await;
    browser
        .wait_xpath(
            "//section[contains(@class,'delivery-log')]//tr[td[normalize-space()='VEHICLE_STATE']]//span[normalize-space()='succeeded']",
        )
        .await;
    browser.assert_fits_width("the webhook page").await;
    browser.screenshot("webhook-narrow").await;

    // The vehicle's page: its signals and the delivery that spoke of it.
    browser.click_link("Vehicles").await;
    browser.heading("Vehicles").await;
    browser.click_link("TESLA Model 3 2020").await;
    browser.heading("TESLA Model 3 2020").await;
    browser.wait_text("td", "78 percent").await;
    browser.wait_text("td", "StateOfCharge").await;
    browser
        .wait_xpath("//section//tr[td[normalize-space()='VEHICLE_STATE']]")
        .await;
    browser.assert_fits_width("the vehicle page").await;
    browser.screenshot("vehicle-narrow").await;

    // Unsubscribe from the vehicle's page.
    browser
        .wait_xpath(&format!("//button[@aria-label='Unsubscribe from {name}']"))
        .await
        .click()
        .await
        .expect("unsubscribe");
    browser
        .wait_text("main", "Not subscribed to any webhook")
        .await;
    browser.quit().await;
    server.server.stop().await;
}

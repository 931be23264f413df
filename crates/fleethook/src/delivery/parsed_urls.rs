//! Callback URLs parsed once, not once per attempt. A dispatcher sends to a handful of
//! callback URLs again and again, and parsing one (its host through IDNA processing) was
//! about 2 % of the drain's CPU in `fleethook bench throughput`; a parsed URL is cloned from
//! here instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::Uri;
use reqwest::Url;

/// A callback URL parsed twice over: as a [`Url`] for the address checks
/// (`http::check_target`) and as the [`Uri`] the request goes to.
#[derive(Debug, PartialEq)]
pub struct CallbackUrl {
    pub url: Url,
    pub uri: Uri,
}

/// Distinct URLs kept at most; past that the map starts over (a store of a million webhooks
/// must not grow it without bound).
const KEPT: usize = 4_096;

/// URLs by their text, as parsed.
#[derive(Default)]
pub struct ParsedUrls {
    parsed: Mutex<HashMap<String, Arc<CallbackUrl>>>,
}

impl ParsedUrls {
    /// `uri` parsed, from the map when it was parsed before. Text that does not parse is not
    /// kept, and fails each time alike, with the parser's reason.
    pub fn parse(&self, text: &str) -> Result<Arc<CallbackUrl>, String> {
        if let Some(url) = self.lock().get(text) {
            return Ok(url.clone());
        }
        let url = Url::parse(text).map_err(|err| err.to_string())?;
        // The URL's own serialisation is normalised (IDNA host, percent-encoding), so it parses
        // as a URI; the fragment, never sent, is left out (a `#` elsewhere is percent-encoded).
        let sent = url.as_str();
        let sent = sent.split_once('#').map_or(sent, |(before, _)| before);
        let uri = Uri::try_from(sent).map_err(|err| err.to_string())?;
        let url = Arc::new(CallbackUrl { url, uri });
        let mut parsed = self.lock();
        if parsed.len() >= KEPT {
            parsed.clear();
        }
        parsed.insert(text.to_string(), url.clone());
        Ok(url)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CallbackUrl>>> {
        // A map of parsed URLs is whole after any panic: nothing to repair.
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{ParsedUrls, KEPT};

    #[test]
    fn parses_once_and_answers_alike() {
        let urls = ParsedUrls::default();
        let uri = "https://Hooks.EXAMPLE.com:8443/path?x=1";
        let first = urls.parse(uri).expect("parses");
        let again = urls.parse(uri).expect("parses from the map");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second answer comes from the map"
        );
        assert_eq!(again.url.host_str(), Some("hooks.example.com"));
        assert_eq!(again.uri, "https://hooks.example.com:8443/path?x=1");
        assert_eq!(urls.lock().len(), 1);
    }

    #[test]
    fn the_request_uri_leaves_the_fragment_out_and_keeps_the_normalised_host() {
        let urls = ParsedUrls::default();
        let parsed = urls
            .parse("https://Bücher.example/a b?q=1#section")
            .expect("parses");
        assert_eq!(parsed.uri, "https://xn--bcher-kva.example/a%20b?q=1");
        assert_eq!(parsed.url.fragment(), Some("section"));
    }

    #[test]
    fn bad_text_fails_every_time_and_is_not_kept() {
        let urls = ParsedUrls::default();
        for _ in 0..2 {
            assert!(urls.parse("not a url").is_err());
        }
        assert!(urls.lock().is_empty());
    }

    #[test]
    fn starts_over_when_full() {
        let urls = ParsedUrls::default();
        for i in 0..=KEPT {
            let url = urls
                .parse(&format!("https://example.com/{i}"))
                .expect("parses");
            assert_eq!(url.uri.path(), format!("/{i}"));
        }
        assert_eq!(urls.lock().len(), 1, "the map started over at {KEPT}");
    }
}

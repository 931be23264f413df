//! Signatures: Smartcar's `SC-Signature` and verification challenge (HMAC-SHA256 keyed with
//! the application's management token), and Standard Webhooks' `webhook-signature`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Lowercase hex HMAC-SHA256 of `message` keyed with the UTF-8 bytes of `key`.
pub fn hmac_sha256_hex(key: &str, message: &[u8]) -> String {
    hex::encode(hmac_sha256(key.as_bytes(), &[message]))
}

/// The answer a receiver gives to a verification challenge: hex HMAC-SHA256(AMT, challenge).
pub fn hash_challenge(amt: &str, challenge: &str) -> String {
    hmac_sha256_hex(amt, challenge.as_bytes())
}

/// The `SC-Signature` header value: hex HMAC-SHA256(AMT, exact body bytes).
pub fn sc_signature(amt: &str, body: &[u8]) -> String {
    hmac_sha256_hex(amt, body)
}

/// Whether `signature` (hex, either case) is the `SC-Signature` of `body`; constant time.
pub fn verify_sc_signature(amt: &str, body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    let expected = hmac_sha256(amt.as_bytes(), &[body]);
    given.len() == expected.len() && bool::from(given.ct_eq(&expected))
}

/// Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-id`, `webhook-timestamp`
/// and `webhook-signature: v1,<base64>` signed with a `whsec_` secret.
pub mod standard {
    use std::fmt;

    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;
    use rand::RngCore;
    use subtle::ConstantTimeEq;

    /// The prefix of a Standard Webhooks signing secret.
    pub const SECRET_PREFIX: &str = "whsec_";

    /// A signing secret that is not base64 (after an optional `whsec_` prefix), or is empty.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct InvalidSecret;

    impl fmt::Display for InvalidSecret {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("invalid signing secret: expected \"whsec_\" followed by non-empty base64")
        }
    }

    impl std::error::Error for InvalidSecret {}

    /// A new secret: `whsec_` and the base64 of 24 random bytes (192 bits, as Svix issues).
    pub fn generate_secret() -> String {
        let mut key = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut key);
        format!("{SECRET_PREFIX}{}", BASE64.encode(key))
    }

    /// The HMAC key of a secret. The prefix is optional, as in the reference libraries, so a
    /// secret pasted without it still works.
    fn key(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        match BASE64.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(key),
            _ => Err(InvalidSecret),
        }
    }

    fn mac(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> [u8; 32] {
        let prefix = format!("{msg_id}.{timestamp_secs}.");
        super::hmac_sha256(key, &[prefix.as_bytes(), body])
    }

    /// One signature entry, `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`.
    pub fn sign(
        secret: &str,
        msg_id: &str,
        timestamp_secs: i64,
        body: &[u8],
    ) -> Result<String, InvalidSecret> {
        let key = key(secret)?;
        Ok(format!(
            "v1,{}",
            BASE64.encode(mac(&key, msg_id, timestamp_secs, body))
        ))
    }

    /// The `webhook-signature` header: one `v1,` entry per secret, joined by one space (during
    /// a rotation both the new and the old secret sign).
    pub fn signature_header(
        secrets: &[&str],
        msg_id: &str,
        timestamp_secs: i64,
        body: &[u8],
    ) -> Result<String, InvalidSecret> {
        let entries = secrets
            .iter()
            .map(|secret| sign(secret, msg_id, timestamp_secs, body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries.join(" "))
    }

    /// Whether any `v1` entry of `header` is the signature of this message under `secret`;
    /// constant time per entry. The timestamp tolerance is the caller's policy, not checked here.
    pub fn verify(
        secret: &str,
        msg_id: &str,
        timestamp_secs: i64,
        body: &[u8],
        header: &str,
    ) -> bool {
        let Ok(key) = key(secret) else { return false };
        let expected = mac(&key, msg_id, timestamp_secs, body);
        header
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, sig)| BASE64.decode(sig).ok())
            .any(|given| given.len() == expected.len() && bool::from(given.ct_eq(&expected)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        const TS: i64 = 1_614_265_330;
        const BODY: &[u8] = br#"{"test": 2432232314}"#;
        const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

        #[test]
        fn reproduces_the_published_standard_webhooks_vector() {
            // The vector of the Standard Webhooks / Svix libraries' own tests: a receiver's
            // library accepts what we send only if we reproduce it exactly.
            assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), EXPECTED);
            // The reference Rust library's vector.
            assert_eq!(
                sign(
                    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                    "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                    1_649_367_553,
                    br#"{"email":"test@example.com","username":"test_user"}"#
                )
                .unwrap(),
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
            );
        }

        #[test]
        fn the_whsec_prefix_is_optional() {
            assert_eq!(
                sign(&SECRET[SECRET_PREFIX.len()..], ID, TS, BODY).unwrap(),
                EXPECTED
            );
        }

        #[test]
        fn bad_secrets_are_refused() {
            assert_eq!(sign("whsec_not base64!", ID, TS, BODY), Err(InvalidSecret));
            assert_eq!(sign("whsec_", ID, TS, BODY), Err(InvalidSecret));
            assert!(signature_header(&[SECRET, "whsec_%%"], ID, TS, BODY).is_err());
            assert!(!verify("whsec_%%", ID, TS, BODY, EXPECTED));
        }

        #[test]
        fn a_rotation_header_carries_one_entry_per_secret_and_verifies_with_either() {
            let new = generate_secret();
            let header = signature_header(&[&new, SECRET], ID, TS, BODY).unwrap();
            let entries: Vec<&str> = header.split(' ').collect();
            assert_eq!(entries.len(), 2);
            assert_eq!(entries[1], EXPECTED);
            assert!(verify(&new, ID, TS, BODY, &header));
            assert!(verify(SECRET, ID, TS, BODY, &header));
            assert!(!verify(&generate_secret(), ID, TS, BODY, &header));
        }

        #[test]
        fn verify_refuses_other_bodies_ids_times_and_versions() {
            assert!(verify(SECRET, ID, TS, BODY, EXPECTED));
            assert!(!verify(
                SECRET,
                ID,
                TS,
                br#"{"test": 2432232315}"#,
                EXPECTED
            ));
            assert!(!verify(SECRET, "msg_other", TS, BODY, EXPECTED));
            assert!(!verify(SECRET, ID, TS + 1, BODY, EXPECTED));
            assert!(!verify(
                SECRET,
                ID,
                TS,
                BODY,
                &EXPECTED.replacen("v1", "v2", 1)
            ));
            assert!(!verify(SECRET, ID, TS, BODY, ""));
            assert!(verify(
                SECRET,
                ID,
                TS,
                BODY,
                &format!("v1,bm9wZQ== {EXPECTED}")
            ));
        }

        #[test]
        fn generated_secrets_are_whsec_and_24_bytes() {
            let secret = generate_secret();
            assert!(secret.starts_with(SECRET_PREFIX));
            assert_eq!(key(&secret).unwrap().len(), 24);
            assert_ne!(secret, generate_secret());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_smartcars_published_challenge_vector() {
        assert_eq!(
            hash_challenge("amt", "challenge"),
            "9baf5a7464bd86740ad5a06e439dcf535a075022ed2c92d74efacf646d79328e"
        );
    }

    #[test]
    fn reproduces_smartcars_published_sc_signature_vector() {
        let body = br#"{"pizza":"pasta"}"#;
        let expected = "4c05a8da471f05156ad717baa4017acd13a3a809850b9ca7d3301dcaaa854f70";
        assert_eq!(sc_signature("amt", body), expected);
        assert!(verify_sc_signature("amt", body, expected));
        assert!(verify_sc_signature("amt", body, &expected.to_uppercase()));
    }

    #[test]
    fn sc_signature_verification_refuses_anything_else() {
        let body = br#"{"pizza":"pasta"}"#;
        let good = sc_signature("amt", body);
        assert!(!verify_sc_signature("other", body, &good));
        assert!(!verify_sc_signature("amt", br#"{"pizza":"pastA"}"#, &good));
        assert!(!verify_sc_signature("amt", body, &good[..62]));
        assert!(!verify_sc_signature("amt", body, "not hex"));
        assert!(!verify_sc_signature("amt", body, ""));
    }
}

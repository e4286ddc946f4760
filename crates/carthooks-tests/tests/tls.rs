//! Hardening item 21: the TLS path end to end, on both backends. carthooks-mock
//! serves HTTPS with a certificate issued at test time by a test CA (rcgen); the
//! client trusts that CA through the public API (`add_root_certificate`).
//! reqwest negotiates HTTP/2 by ALPN (the mock records the version of every
//! request); ureq speaks HTTP/1.1. A certificate from an unknown CA and a host
//! name the certificate does not name fail with a TLS error, before anything
//! is sent.

use carthooks_client::RootCertificate;
use carthooks_client::{BuildClient, ClientBuilder, Connect};
use carthooks_core::{Error, TransportErrorKind};
use carthooks_mock::{MockConfig, MockServer, MockTls};
use carthooks_tests::{ReqwestSdk, Sdk, UreqSdk, oauth};

/// A CA (as PEM) and a server certificate it issued for `localhost`.
fn test_pki() -> (String, MockTls) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Carthooks test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();
    let tls = MockTls {
        cert_chain: vec![server.der().to_vec()],
        private_key: server_key.serialize_der(),
    };
    (ca_cert.pem(), tls)
}

fn trusting<S: Sdk>(url: &str, ca_pem: Option<&str>) -> ClientBuilder<S::Client> {
    let mut builder = ClientBuilder::<S::Client>::new()
        .without_env()
        .base_url(url)
        .oauth(oauth())
        .retry_policy(carthooks_core::RetryPolicy::none());
    if let Some(pem) = ca_pem {
        for ca in RootCertificate::from_pem(pem.as_bytes()).unwrap() {
            builder = builder.add_root_certificate(ca);
        }
    }
    builder
}

fn https_with_a_private_ca<S: Sdk>(expected_version: &str)
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let (ca, tls) = test_pki();
    let server = MockServer::start_tls(MockConfig::default(), tls).unwrap();
    assert!(server.url().starts_with("https://localhost:"));
    let c = S::wrap(trusting::<S>(server.url(), Some(&ca)).build().unwrap());
    c.initialize_oauth(None)
        .unwrap_or_else(|e| panic!("{}: {e:?}", S::NAME));
    assert_eq!(c.get_current_user().unwrap().data.user_id, 1000);
    let versions: Vec<String> = server
        .state()
        .log()
        .iter()
        .map(|r| r.version.clone())
        .collect();
    assert_eq!(versions.len(), 2);
    assert!(
        versions.iter().all(|v| v == expected_version),
        "{}: {versions:?}",
        S::NAME
    );
}

fn assert_tls_error(e: &Error, backend: &str) {
    let t = e
        .transport_error()
        .unwrap_or_else(|| panic!("{backend}: {e:?}"));
    assert_eq!(t.kind(), TransportErrorKind::Tls, "{backend}: {e:?}");
    assert!(t.never_sent());
    assert!(e.to_string().contains("tls handshake failed"), "{e}");
}

fn untrusted_and_misnamed_certificates_fail<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let (ca, tls) = test_pki();
    let server = MockServer::start_tls(MockConfig::default(), tls).unwrap();
    // The default roots do not know the test CA.
    let c = S::wrap(trusting::<S>(server.url(), None).build().unwrap());
    assert_tls_error(&c.initialize_oauth(None).unwrap_err(), S::NAME);
    // Another CA is trusted instead: still unknown.
    let (other_ca, _) = test_pki();
    let c = S::wrap(
        trusting::<S>(server.url(), Some(&other_ca))
            .build()
            .unwrap(),
    );
    assert_tls_error(&c.initialize_oauth(None).unwrap_err(), S::NAME);
    // The right CA, the wrong name: the certificate names localhost only.
    let by_ip = format!("https://127.0.0.1:{}", server.addr().port());
    let c = S::wrap(trusting::<S>(&by_ip, Some(&ca)).build().unwrap());
    assert_tls_error(&c.initialize_oauth(None).unwrap_err(), S::NAME);
    assert_eq!(server.counters().requests, 0, "nothing reached the server");
}

#[test]
fn reqwest_https_with_a_private_ca_negotiates_http2() {
    https_with_a_private_ca::<ReqwestSdk>("HTTP/2.0");
}

#[test]
fn ureq_https_with_a_private_ca() {
    https_with_a_private_ca::<UreqSdk>("HTTP/1.1");
}

#[test]
fn reqwest_untrusted_and_misnamed_certificates_fail() {
    untrusted_and_misnamed_certificates_fail::<ReqwestSdk>();
}

#[test]
fn ureq_untrusted_and_misnamed_certificates_fail() {
    untrusted_and_misnamed_certificates_fail::<UreqSdk>();
}

//! The token `RdsIamAuth` hands out as a password is the presigned `connect` request RDS expects: compared, part by
//! part and signature included, with one presigned directly by the SDK's SigV4 signer (`aws-sigv4`) for the same
//! fixed time and static credentials.

use std::{
    collections::BTreeMap,
    time::{Duration, UNIX_EPOCH},
};

use aws_credential_types::{provider::SharedCredentialsProvider, Credentials as AwsCredentials};
use aws_sigv4::{
    http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings},
    sign::v4,
};
use aws_smithy_async::time::StaticTimeSource;
use aws_smithy_runtime_api::client::identity::Identity;
use rotapool_core::{source::RdsIamAuth, SecretSource, Stage};

const HOST: &str = "orders.cluster-c0ffee.eu-central-1.rds.amazonaws.com";
const PORT: u16 = 3306;
const USER: &str = "app_iam";
const REGION: &str = "eu-central-1";
/// 2024-08-26T22:00:00Z
const SIGNED_AT: u64 = 1_724_709_600;

fn keys() -> AwsCredentials {
    AwsCredentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
        None,
        None,
        "test",
    )
}

/// The query of a token `host:port/?query`, decoded, by name.
fn query(token: &str) -> BTreeMap<String, String> {
    let (_, query) = token.split_once("/?").expect("host:port/?query");
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("name=value");
            (name.to_owned(), percent_decoded(value))
        })
        .collect()
}

fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The query parameters `aws-sigv4` adds when presigning RDS's `connect` request itself.
fn presigned_directly() -> BTreeMap<String, String> {
    let identity: Identity = keys().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(900));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("rds-db")
        .time(UNIX_EPOCH + Duration::from_secs(SIGNED_AT))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("https://{HOST}:{PORT}/?Action=connect&DBUser={USER}");
    let request =
        SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::empty()).unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut query: BTreeMap<String, String> = instructions
        .params()
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.to_string()))
        .collect();
    query.insert("Action".into(), "connect".into());
    query.insert("DBUser".into(), USER.into());
    query
}

#[tokio::test]
async fn the_token_is_the_connect_request_presigned_by_the_sdk_signer() {
    let sdk = aws_config::SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(keys()))
        .time_source(StaticTimeSource::new(
            UNIX_EPOCH + Duration::from_secs(SIGNED_AT),
        ))
        .build();
    let source = RdsIamAuth::builder(HOST, PORT, USER)
        .region(REGION)
        .sdk_config(&sdk)
        .build();
    let version = source.fetch(Stage::Current).await.expect("a token");
    let token = version.credentials.password();

    assert!(
        token.starts_with(&format!("{HOST}:{PORT}/?")),
        "host and port first"
    );
    assert!(
        !token.starts_with("https://"),
        "no scheme: RDS takes host:port/?query"
    );
    assert_eq!(version.credentials.username(), USER);
    assert_eq!(version.credentials.host(), Some(HOST));
    assert_eq!(version.credentials.port(), Some(PORT));
    assert_eq!(version.version_id, format!("iam-{SIGNED_AT}-1"));

    let ours = query(token);
    assert_eq!(ours["Action"], "connect");
    assert_eq!(ours["DBUser"], USER);
    assert_eq!(ours["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(
        ours["X-Amz-Credential"],
        format!("AKIDEXAMPLE/20240826/{REGION}/rds-db/aws4_request")
    );
    assert_eq!(ours["X-Amz-Date"], "20240826T220000Z");
    assert_eq!(ours["X-Amz-Expires"], "900");
    assert_eq!(ours["X-Amz-SignedHeaders"], "host");
    let signature = &ours["X-Amz-Signature"];
    assert_eq!(signature.len(), 64);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));

    assert_eq!(
        ours,
        presigned_directly(),
        "every part, and the signature, equal"
    );
}

//! Where the simulator keeps secrets: the in-memory store (the default), or Secrets Manager through the standard
//! AWS environment (moto with `AWS_ENDPOINT_URL`, or real AWS).

use std::sync::{Arc, Mutex};

use rotapool_core::{
    source::{AwsSecretsManager, SecretAdmin},
    InMemorySecretStore,
};

/// Which store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    /// In process, with Secrets Manager's version and label semantics.
    Memory,
    /// AWS Secrets Manager (or moto) via the default credential chain and `AWS_ENDPOINT_URL`.
    Aws,
}

/// A secret store, remembering what it created so that [`Store::clean_up`] can delete it.
pub(crate) struct Store {
    kind: StoreKind,
    created: Mutex<Vec<String>>,
}

impl Store {
    /// A store of `kind`.
    pub(crate) fn new(kind: StoreKind) -> Self {
        Self {
            kind,
            created: Mutex::new(Vec::new()),
        }
    }

    /// Creates the secret `name` holding `text` as AWSCURRENT.
    pub(crate) async fn create(
        &self,
        name: &str,
        text: &str,
    ) -> Result<Arc<dyn SecretAdmin>, String> {
        match self.kind {
            StoreKind::Memory => {
                let store = InMemorySecretStore::empty(name);
                store.put_current_text(text);
                Ok(Arc::new(store))
            }
            StoreKind::Aws => {
                aws_client()
                    .await
                    .create_secret()
                    .name(name)
                    .secret_string(text)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "CreateSecret `{name}`: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                        )
                    })?;
                self.created.lock().unwrap().push(name.to_owned());
                Ok(Arc::new(AwsSecretsManager::builder(name).build().await))
            }
        }
    }

    /// Deletes the secrets this run created in AWS, without the recovery window.
    pub(crate) async fn clean_up(&self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let client = aws_client().await;
        for name in names {
            let _ = client
                .delete_secret()
                .secret_id(&name)
                .force_delete_without_recovery(true)
                .send()
                .await;
        }
    }
}

async fn aws_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(
        &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    )
}

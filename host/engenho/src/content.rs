//! `engenho content`: components a pod's `image` can name, stored in the
//! cluster by BLAKE3 digest and reached through the kubeconfig
//! (`$KUBECONFIG`), as `engenho plugin` reaches it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

/// The scheme of a content reference: `blake3:<64 hex>`.
pub const SCHEME: &str = "blake3:";

/// Arguments of `engenho content`.
#[derive(Debug, clap::Args)]
pub struct ContentArgs {
    #[command(subcommand)]
    command: ContentCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ContentCommand {
    /// Upload a component; print its reference, `blake3:<digest>`.
    Push {
        /// The component file (built for wasm32-wasip2).
        file: PathBuf,
    },
    /// List the stored components: reference and size.
    List,
    /// Fetch a stored component and say what it is: digest (checked), size,
    /// exports and imports.
    Inspect {
        /// `blake3:<digest>`, or `<name>@blake3:<digest>` as a pod's image.
        reference: String,
    },
}

/// The digest (64 lowercase hex digits) a reference names: `blake3:<hex>`
/// or `<name>@blake3:<hex>`.
///
/// # Errors
/// Anything else, with the forms it should take.
pub fn digest_of_reference(reference: &str) -> anyhow::Result<&str> {
    let bare = reference.rsplit_once('@').map_or(reference, |(_, digest)| digest);
    let digest = bare.strip_prefix(SCHEME).unwrap_or_default();
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        bail!("{reference:?} is not a content reference: blake3:<64 hex digits>, or <name>@blake3:<64 hex digits>");
    }
    Ok(digest)
}

/// Runs `engenho content`.
pub async fn run(args: ContentArgs) -> anyhow::Result<()> {
    let client = || async { kube::Client::try_default().await.context("connecting with the kubeconfig") };
    match args.command {
        ContentCommand::Push { file } => {
            let bytes = read(&file)?;
            let digest = engenho_wasm::digest_of(&bytes);
            let upload = http::Request::put(component_path(&digest))
                .header(http::header::CONTENT_TYPE, "application/wasm")
                .body(bytes)?;
            client().await?.request_text(upload).await.context("uploading the component")?;
            println!("{SCHEME}{digest}");
        }
        ContentCommand::List => {
            let request = http::Request::get("/apis/engenho.io/v1alpha1/components").body(Vec::new())?;
            let text = client().await?.request_text(request).await.context("listing the components")?;
            let list: Value = serde_json::from_str(&text).context("the component list")?;
            println!("{:<72} BYTES", "REFERENCE");
            for item in list["items"].as_array().into_iter().flatten() {
                let digest = item["digest"].as_str().unwrap_or_default();
                println!("{:<72} {}", format!("{SCHEME}{digest}"), item["bytes"]);
            }
        }
        ContentCommand::Inspect { reference } => {
            let digest = digest_of_reference(&reference)?;
            let bytes = fetch(&client().await?, digest).await?;
            let host = engenho_wasm::PluginHost::new(None)?;
            let interfaces = host.interfaces("content", digest, &bytes)?;
            println!("reference: {SCHEME}{digest}");
            println!("bytes:     {}", bytes.len());
            println!("exports:   {}", interfaces.exports.join(", "));
            println!("imports:   {}", interfaces.imports.join(", "));
        }
    }
    Ok(())
}

/// The bytes of stored component `digest`.
///
/// # Errors
/// The cluster refused (404: no such component), or the bytes do not hash
/// to the digest.
async fn fetch(client: &kube::Client, digest: &str) -> anyhow::Result<Vec<u8>> {
    use http_body_util::BodyExt;
    let request = http::Request::get(component_path(digest)).body(kube::client::Body::empty())?;
    let response = client.send(request).await.context("fetching the component")?;
    let status = response.status();
    // A component is at most the store's limit; a status is far smaller.
    let limit = engenho_api::kube::plugins::COMPONENT_BYTES_MAX;
    let body = http_body_util::Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|error| anyhow::anyhow!("reading the component (at most {limit} bytes): {error}"))?
        .to_bytes();
    if !status.is_success() {
        let status_object: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let message = status_object["message"]
            .as_str()
            .map_or_else(|| String::from_utf8_lossy(&body).into_owned(), str::to_owned);
        bail!("{SCHEME}{digest}: {message}");
    }
    anyhow::ensure!(
        engenho_wasm::digest_of(&body) == digest,
        "the cluster answered bytes that do not hash to {digest}"
    );
    Ok(body.to_vec())
}

fn component_path(digest: &str) -> String {
    format!("/apis/engenho.io/v1alpha1/components/{digest}")
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_digest_with_or_without_a_name() {
        // Goal: the two forms a pod's image takes, and a clear refusal of
        // anything else (tags, other hashes, short or uppercase digests).
        let digest = "a".repeat(64);
        assert_eq!(digest_of_reference(&format!("blake3:{digest}")).expect("bare"), digest);
        assert_eq!(digest_of_reference(&format!("hello@blake3:{digest}")).expect("named"), digest);
        for bad in [
            "nginx:1.27".to_owned(),
            digest.clone(),
            format!("sha256:{digest}"),
            format!("blake3:{}", &digest[1..]),
            format!("blake3:{}", "A".repeat(64)),
        ] {
            let error = digest_of_reference(&bad).expect_err("refused").to_string();
            assert!(error.contains("is not a content reference"), "{bad}: {error}");
        }
    }
}

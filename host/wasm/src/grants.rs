//! What a plugin may reach beyond its own memory, and what of the node it
//! may never be granted: the node's data directory, the root directory,
//! `/proc`, `/sys` and `/etc`, and the node's own listening addresses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Host directories no plugin may read, nor any directory within them.
const FORBIDDEN_DIRECTORIES: [&str; 3] = ["/proc", "/sys", "/etc"];

/// What a plugin may reach beyond its own memory; nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Environment variables the plugin sees, as (name, value).
    pub environment: Vec<(String, String)>,
    /// Host directories the plugin may read, each as (host path, path the
    /// plugin sees), read-only.
    pub directories: Vec<(PathBuf, String)>,
    /// Addresses the plugin may open TCP connections to; no other socket
    /// use is ever allowed.
    pub tcp_connect: Vec<SocketAddr>,
}

/// What of the node no grant may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    /// The node's data directory: its keys, its store, its plugins.
    pub data_dir: Option<PathBuf>,
    /// The node's own listening addresses, as (what listens, address):
    /// its etcd, peer and API addresses.
    pub addresses: Vec<(&'static str, SocketAddr)>,
}

impl Grants {
    /// The grants with every directory resolved (symbolic links followed),
    /// when none names what `reserved` keeps from plugins.
    ///
    /// # Errors
    /// The first grant that is refused, described for the Plugin's status.
    pub fn checked(mut self, reserved: &Reserved) -> Result<Self, String> {
        for (host, _) in &mut self.directories {
            *host = check_directory(host, reserved)?;
        }
        for address in &self.tcp_connect {
            check_address(*address, reserved)?;
        }
        Ok(self)
    }
}

/// `host` resolved, if a plugin may read it.
fn check_directory(host: &Path, reserved: &Reserved) -> Result<PathBuf, String> {
    let shown = host.display();
    if !host.is_absolute() {
        return Err(format!("grants.directories: the host path {shown} is not absolute"));
    }
    let resolved =
        std::fs::canonicalize(host).map_err(|e| format!("grants.directories: the host path {shown}: {e}"))?;
    let named =
        if resolved == host { format!("{shown}") } else { format!("{shown} (resolved: {})", resolved.display()) };
    if resolved == Path::new("/") {
        return Err(format!("grants.directories: {named} is the root directory, which no plugin may read"));
    }
    if let Some(forbidden) = FORBIDDEN_DIRECTORIES.iter().find(|f| resolved.starts_with(f)) {
        return Err(format!("grants.directories: {named} is within {forbidden}, which no plugin may read"));
    }
    if let Some(data_dir) = &reserved.data_dir {
        // The data directory as it resolves, so that a link to it or
        // into it is caught as well.
        let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.clone());
        if resolved.starts_with(&data_dir) || data_dir.starts_with(&resolved) {
            return Err(format!(
                "grants.directories: {named} includes or lies within the node's data directory {}, which no plugin \
                 may read",
                data_dir.display()
            ));
        }
    }
    Ok(resolved)
}

/// Whether `address` may be granted: not one the node listens on (on any
/// address, when the node listens on all of them).
fn check_address(address: SocketAddr, reserved: &Reserved) -> Result<(), String> {
    let own = reserved.addresses.iter().find(|(_, own)| {
        own.port() == address.port()
            && (own.ip() == address.ip() || own.ip().is_unspecified() || address.ip().is_unspecified())
    });
    match own {
        Some((what, own)) => Err(format!(
            "grants.tcpConnect: {address} is the node's own {what} address ({own}), which no plugin may reach"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directories(host: &Path) -> Grants {
        Grants { directories: vec![(host.to_owned(), "/data".into())], ..Grants::default() }
    }

    /// Goal: no grant reaches the node's own files or system directories,
    /// however it is spelled. Method: grant each forbidden directory
    /// directly, below it, through a symbolic link and as a parent.
    #[test]
    fn directories_of_the_node_and_the_system_are_refused() {
        let root = tempfile::tempdir().expect("temporary directory");
        let data_dir = root.path().join("node");
        let granted = root.path().join("shared");
        std::fs::create_dir_all(data_dir.join("pki")).expect("data directory");
        std::fs::create_dir_all(&granted).expect("shared directory");
        std::os::unix::fs::symlink("/etc", root.path().join("config")).expect("link");
        let reserved = Reserved { data_dir: Some(data_dir.clone()), addresses: Vec::new() };
        let refused = |host: &Path| directories(host).checked(&reserved).expect_err("refused");
        assert_eq!(refused(Path::new("/")), "grants.directories: / is the root directory, which no plugin may read");
        for forbidden in ["/proc", "/sys/kernel", "/etc", "/etc/ssl"] {
            assert!(refused(Path::new(forbidden)).contains("which no plugin may read"), "{forbidden}");
        }
        assert!(refused(&root.path().join("config")).contains("(resolved: /etc) is within /etc"));
        for within in [&data_dir, &data_dir.join("pki"), &root.path().to_owned()] {
            assert!(refused(within).contains("the node's data directory"), "{}", within.display());
        }
        assert!(refused(Path::new("relative")).contains("is not absolute"));
        let checked = directories(&granted).checked(&reserved).expect("a directory of its own");
        assert_eq!(checked.directories[0].0, std::fs::canonicalize(&granted).expect("resolved"));
    }

    /// Goal: no grant reaches the node's own ports. Method: grant each
    /// listening address, the wildcard and a port under a node listening
    /// on all addresses; another port passes.
    #[test]
    fn the_nodes_own_addresses_are_refused() {
        let api: SocketAddr = "127.0.0.5:6443".parse().expect("address");
        let reserved = Reserved {
            data_dir: None,
            addresses: vec![("API", api), ("etcd", "0.0.0.0:2379".parse().expect("address"))],
        };
        let connect = |address: &str| {
            Grants { tcp_connect: vec![address.parse().expect("address")], ..Grants::default() }.checked(&reserved)
        };
        assert_eq!(
            connect("127.0.0.5:6443").expect_err("the API"),
            "grants.tcpConnect: 127.0.0.5:6443 is the node's own API address (127.0.0.5:6443), which no plugin may \
             reach"
        );
        assert!(connect("0.0.0.0:6443").is_err(), "the wildcard");
        assert!(connect("10.1.2.3:2379").expect_err("etcd on every address").contains("own etcd address"));
        assert!(connect("127.0.0.6:6443").is_ok(), "another address");
        assert!(connect("127.0.0.5:8080").is_ok(), "another port");
    }
}

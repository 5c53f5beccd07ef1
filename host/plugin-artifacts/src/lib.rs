//! The plugins and example pod components under `plugins/`, built for
//! wasm32-wasip2 as part of the normal build, as component bytes.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The component bytes of plugin `name`, if it is built in.
pub fn plugin(name: &str) -> Option<&'static [u8]> {
    PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// The component bytes of example pod component `name`, if it is built in.
pub fn pod_component(name: &str) -> Option<&'static [u8]> {
    POD_COMPONENTS.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

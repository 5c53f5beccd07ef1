//! Controller: DaemonSets (in progress).

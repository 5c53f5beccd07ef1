//! Integration tests of the datastore: openraft's storage suite and the
//! MVCC store checked against a model.

mod decode;
mod hostile;
mod model;
mod raft_suite;
mod watch;

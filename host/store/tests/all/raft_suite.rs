//! Goal: the fjall log store and state machine satisfy openraft's own
//! storage contract. Method: run `openraft::testing::Suite::test_all`, each
//! case on a fresh database in a temporary directory.

use engenho_store::{LogStore, Mvcc, StateMachineStore, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct FjallBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for FjallBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = engenho_store::open_database(&dir.path().join("db")).expect("open database");
        let log = LogStore::open(&db, 0).expect("open log store");
        let store = Mvcc::open(&db).expect("open mvcc");
        let state_machine = StateMachineStore::new(store, dir.path());
        Ok((dir, log, state_machine))
    }
}

#[test]
fn fjall_store_passes_the_openraft_suite() {
    Suite::test_all(FjallBuilder).expect("openraft storage suite");
}

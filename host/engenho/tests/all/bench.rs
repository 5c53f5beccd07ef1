//! `engenho bench`: the store, API, controllers, scheduler and failover
//! benchmarks run end to end on small settings and print their tables. The
//! figures themselves belong in BENCHMARKS.md; here every measured row must
//! show work done.

use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Runs `engenho` with the words of `command_line`; its standard output,
/// after it succeeded.
fn engenho(command_line: &str) -> String {
    let args: Vec<&str> = command_line.split_whitespace().collect();
    let output = Command::new(env!("CARGO_BIN_EXE_engenho")).args(&args).output().expect("run engenho");
    assert!(
        output.status.success(),
        "engenho {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The cells of the table rows of `output` (markdown), separators left out.
fn rows(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("| ---"))
        .map(|line| line.trim_matches('|').split('|').map(|cell| cell.trim().to_owned()).collect())
        .collect()
}

/// The row whose first cell is `first` and, if given, whose second is
/// `second`.
fn row<'a>(rows: &'a [Vec<String>], first: &str, second: Option<&str>) -> &'a [String] {
    rows.iter()
        .find(|row| row[0] == first && second.is_none_or(|second| row[1] == second))
        .unwrap_or_else(|| panic!("no row {first} {second:?} in {rows:?}"))
}

/// Whether `ratio`, printed to two decimals, is `numerator / denominator`,
/// both printed as whole numbers: within what the three roundings allow.
fn ratio_matches(ratio: f64, numerator: f64, denominator: f64) -> bool {
    let rounding = 0.005 + ratio * (0.5 / numerator + 0.5 / denominator);
    (ratio - numerator / denominator).abs() <= rounding + 1e-9
}

/// The number in `cell` (a ratio's `×` dropped), which must be above 0.
fn positive(cell: &str) -> f64 {
    let number: f64 = cell.trim_end_matches('×').parse().unwrap_or_else(|_| panic!("{cell:?} is not a number"));
    assert!(number > 0.0, "{cell} is not positive");
    number
}

/// The benchmarks' clusters listen on fixed loopback addresses, so the
/// tests that start them take turns.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static CLUSTERS: Mutex<()> = Mutex::new(());
    CLUSTERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One test for both, one after the other.
#[test]
fn store_and_api_benchmarks_run_end_to_end() {
    let _turn = one_at_a_time();
    // engenho and etcd take turns, two each per workload.
    let store = engenho("bench store --nodes 1 --concurrency 2 --rounds 1 --seconds 1 --turns 2");
    let table = rows(&store);
    let writes = row(&table, "1", Some("write c=2"));
    let (ours, theirs, ratio) = (positive(&writes[2]), positive(&writes[6]), positive(&writes[10]));
    assert!(ratio_matches(ratio, ours, theirs), "{writes:?}");
    positive(writes[5].trim_end_matches(" µs"));
    let reads = row(&table, "1", Some("serializable read c=16"));
    positive(&reads[2]);
    positive(&reads[6]);

    let api = engenho("bench api --concurrency 2 --rounds 1 --seconds 1 --watchers 3 --watch-events 2");
    let table = rows(&api);
    let creates = row(&table, "2", None);
    let (pod_creates, store_creates) = (positive(&creates[1]), positive(&creates[5]));
    let ratio = positive(&creates[7]);
    assert!(ratio_matches(ratio, store_creates, pod_creates), "{creates:?}");
    let delivered = table.iter().filter(|row| row[0] == "3" && row[1] == "2").collect::<Vec<_>>();
    assert_eq!(delivered.len(), 2, "{table:?}");
    assert!(delivered.iter().all(|row| row[2] == "6"), "every watcher saw every event: {delivered:?}");
}

/// Goal: the scheduler benchmark places every pod in its own process with
/// the components and natively, binds every pod on a real node (as they are
/// created, and from a backlog of pending pods, in pairs with a node running
/// the plugins compiled in) and times profile swaps.
/// Method: tiny sizes, the tables' rows read back.
#[test]
fn scheduler_benchmark_runs_end_to_end() {
    let _turn = one_at_a_time();
    let output = engenho("bench scheduler --nodes 12,24 --pods 60 --swaps 2 --concurrency 8 --backlog-pairs 2");
    let table = rows(&output);
    for nodes in ["12", "24"] {
        let cycles = row(&table, nodes, None);
        let (wasm, native, ratio) = (positive(&cycles[1]), positive(&cycles[2]), positive(&cycles[3]));
        assert!(ratio_matches(ratio, wasm, native), "{cycles:?}");
        assert_eq!((cycles[4].as_str(), cycles[5].as_str()), ("60", "0"), "every pod placed: {cycles:?}");
        let bound =
            table.iter().find(|r| r[0] == nodes && r.len() == 10 && r[2].ends_with(" s")).expect("an end-to-end row");
        assert_eq!(bound[1], "60", "every pod bound: {bound:?}");
        positive(&bound[3]);
        positive(bound[5].trim_end_matches(" ms"));
        let (from_pending, compiled_in, ratio) = (positive(&bound[6]), positive(&bound[7]), positive(&bound[8]));
        assert!(ratio_matches(ratio, from_pending, compiled_in), "{bound:?}");
        let (lowest, highest) = bound[9].split_once('–').expect("the pairs' range");
        assert!(positive(lowest) <= positive(highest), "{bound:?}");
        let swaps = table.iter().find(|r| r[0] == nodes && r.len() == 5).expect("a swaps row");
        assert_eq!(swaps[1], "2", "{swaps:?}");
        positive(swaps[2].trim_end_matches(" ms"));
    }
    let instances = row(&table, "all eight instances", None);
    positive(instances[1].trim_end_matches(" MB"));
    positive(instances[2].trim_end_matches(" MB"));
}

/// Goal: the controllers benchmark rolls a Deployment out on a real node,
/// measures the pods informer, and compares the replicaset controller as a
/// component with itself compiled in, beside the least a component
/// reconcile costs. Method: small sizes, the tables' rows read back.
#[test]
fn controllers_benchmark_runs_end_to_end() {
    let _turn = one_at_a_time();
    let output = engenho("bench controllers --replicas 20 --pods 5 --rounds 3 --round-millis 20");
    let table = rows(&output);
    let rollout = row(&table, "20", None);
    positive(rollout[1].trim_end_matches(" s"));
    positive(rollout[2].trim_end_matches(" s"));
    let informer = row(&table, "pods", None);
    assert!(positive(&informer[1]) >= 20.0, "the informer holds the rollout's pods: {informer:?}");
    let compared = row(&table, "5", None);
    let (component, native) = (positive(&compared[1]), positive(&compared[2]));
    // The median of the rounds' ratios, and their range: `0.32 (0.30–0.33)`.
    let (ratio, range) = compared[3].split_once(" (").expect("a ratio and its rounds' range");
    let (lowest, highest) = range.trim_end_matches(')').split_once('–').expect("the rounds' range");
    let (ratio, lowest, highest) = (positive(ratio), positive(lowest), positive(highest));
    assert!(lowest <= ratio && ratio <= highest, "{compared:?}");
    let (component_us, native_us, least_us) = (positive(&compared[4]), positive(&compared[5]), positive(&compared[6]));
    assert!((component_us - 1e6 / component).abs() <= 0.01 + component_us * 0.01, "{compared:?}");
    assert!((native_us - 1e6 / native).abs() <= 0.01 + native_us * 0.01, "{compared:?}");
    assert!(
        least_us < component_us,
        "a reconcile that decides nothing costs less than one that reads pods: {compared:?}"
    );
}

/// Goal: the failover benchmark kills the leader of a real cluster and
/// times the new leader, the first write after it and the voters
/// restored (a learner promoted). Method: 4 nodes (3 voters, 1 learner),
/// one kill, etcd left out; the engenho row read back.
#[test]
fn failover_benchmark_runs_end_to_end() {
    let _turn = one_at_a_time();
    let output = engenho("bench failover --runs 1 --nodes 4 --skip-etcd");
    let line = output.lines().find(|line| line.starts_with("engenho (4 nodes)")).expect("the engenho row");
    let cells: Vec<&str> = line.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect();
    assert_eq!(cells[1], "1", "one run: {line}");
    for phase in &cells[2..5] {
        let (median, worst) = phase.split_once(" / ").expect("median / worst");
        positive(median.trim_end_matches(" ms"));
        positive(worst.trim_end_matches(" ms"));
    }
}

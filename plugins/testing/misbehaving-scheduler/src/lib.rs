//! Test plugin for the scheduler's containment of its plugins. Its
//! configuration (`{"mode": "ok"}`) names what its filter does:
//!
//! - `ok`: every candidate fits;
//! - `trap`: traps;
//! - `loop`: never returns;
//! - `wrong-count`: answers one verdict fewer than it was asked for (its
//!   own export drops the last: the SDK's always answers in full);
//! - `bad-refusal`: answers that the first candidate is refused by a
//!   refusal it does not give (its own export again);
//! - `refuse`: refuses its configuration.
//!
//! It does not score.

use std::cell::Cell;

use engenho_scheduler::{Abilities, Assumptions, Plugin, Pod, PodParts, Table, Verdicts};
use serde::Deserialize;

thread_local! {
    /// The configured mode, for the export (`wrong-count`, `bad-refusal`).
    static MODE: Cell<Mode> = const { Cell::new(Mode::Ok) };
}

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
}

/// What the filter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Ok,
    Trap,
    Loop,
    WrongCount,
    BadRefusal,
    Refuse,
}

/// Misbehaves as configured.
pub struct Misbehaving {
    mode: Mode,
}

impl Plugin for Misbehaving {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let config: Config = serde_json::from_str(config).map_err(|e| format!("invalid configuration: {e}"))?;
        if config.mode == Mode::Refuse {
            return Err("refused on purpose".into());
        }
        MODE.with(|mode| mode.set(config.mode));
        Ok((
            Self { mode: config.mode },
            Abilities { filters: true, scores: false, reads_pods: false, pod_parts: PodParts::ALL },
        ))
    }

    fn filter(&self, _: &Table, _: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
        match self.mode {
            Mode::Trap => panic!("trapping on purpose"),
            Mode::Loop => loop {
                std::hint::spin_loop();
            },
            Mode::Ok | Mode::WrongCount | Mode::BadRefusal | Mode::Refuse => Verdicts::all_fit(candidates.len()),
        }
    }

    fn score(&self, _: &Table, _: &Pod, nodes: &[u32]) -> Vec<u32> {
        vec![0; nodes.len()]
    }
}

/// The component's export: the SDK's glue, but for the short and the
/// misnumbered answers.
#[cfg(target_arch = "wasm32")]
mod export {
    use engenho_scheduler::guest::{
        self, SchedulerGuest, WitAbilities, WitAssumptions, WitChange, WitPlan, WitPod, WitVerdicts, bindings,
    };

    use super::{MODE, Misbehaving, Mode};

    struct Export;

    impl SchedulerGuest for Export {
        fn configure(config: String) -> Result<WitAbilities, String> {
            guest::configure::<Misbehaving>(&config)
        }

        fn prepare(changes: Vec<WitChange>, pod: WitPod) -> WitPlan {
            guest::prepare::<Misbehaving>(changes, pod)
        }

        fn filter(candidates: Vec<u32>, assumptions: WitAssumptions) -> WitVerdicts {
            let mut verdicts = guest::filter::<Misbehaving>(candidates, assumptions);
            match MODE.with(std::cell::Cell::get) {
                Mode::WrongCount => {
                    verdicts.by_candidate.pop();
                }
                Mode::BadRefusal => {
                    let beyond = u32::try_from(verdicts.refusals.len()).unwrap_or(u32::MAX).saturating_add(7);
                    if let Some(first) = verdicts.by_candidate.first_mut() {
                        *first = beyond;
                    }
                }
                Mode::Ok | Mode::Trap | Mode::Loop | Mode::Refuse => {}
            }
            verdicts
        }

        fn score(nodes: Vec<u32>) -> Vec<u32> {
            guest::score::<Misbehaving>(nodes)
        }
    }

    bindings::export!(Export with_types_in engenho_scheduler::guest::bindings);
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_scheduler::Verdict;

    #[test]
    fn its_configuration_names_what_it_does() {
        let (ok, abilities) = Misbehaving::configure(r#"{"mode": "ok"}"#).expect("configures");
        assert!(abilities.filters && !abilities.scores);
        let verdicts = ok.filter(&Table::default(), &Pod::default(), &[0, 1], &Assumptions::default());
        assert_eq!(verdicts, vec![Verdict::Fits, Verdict::Fits]);
        assert_eq!(MODE.with(Cell::get), Mode::Ok);
        Misbehaving::configure(r#"{"mode": "wrong-count"}"#).expect("configures");
        assert_eq!(MODE.with(Cell::get), Mode::WrongCount, "the export answers short");
        Misbehaving::configure(r#"{"mode": "bad-refusal"}"#).expect("configures");
        assert_eq!(MODE.with(Cell::get), Mode::BadRefusal, "the export misnumbers");
        let refused = Misbehaving::configure(r#"{"mode": "refuse"}"#).err();
        assert_eq!(refused.as_deref(), Some("refused on purpose"));
        let unknown = Misbehaving::configure(r#"{"mode": "sulk"}"#).err().unwrap_or_default();
        assert!(unknown.starts_with("invalid configuration: unknown variant `sulk`"), "{unknown}");
    }
}

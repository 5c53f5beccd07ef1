//! Why a schedule does not parse, in the words of Kubernetes' cron parser
//! (robfig/cron, as kube-apiserver and kube-controller-manager use it).

use std::fmt;

/// Why a schedule does not parse, in the words Kubernetes reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// Nothing was given.
    Empty,
    /// Not five fields: the fields given.
    FieldCount(Vec<String>),
    /// An `@` name that is not a descriptor.
    Descriptor(String),
    /// A range with more than one `-`.
    Hyphens(String),
    /// A range with more than one `/`.
    Slashes(String),
    /// A part that is not a number: the part, and whether it is malformed
    /// (rather than too large for a 64-bit integer).
    NotNumber(String, bool),
    /// A negative number, and the part holding it.
    Negative(i64, String),
    /// A range starting below its field's minimum: start, minimum, range.
    BelowMinimum(u64, u32, String),
    /// A range ending above its field's maximum: end, maximum, range.
    AboveMaximum(u64, u32, String),
    /// A range whose start is past its end: start, end, range.
    Reversed(u64, u64, String),
    /// A step of zero, and the range holding it.
    ZeroStep(String),
    /// An `@every` schedule whose duration does not parse: the schedule,
    /// and Go's words for the duration.
    Duration {
        /// The whole schedule.
        schedule: String,
        /// Why its duration does not parse.
        reason: String,
    },
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty spec string"),
            Self::FieldCount(fields) => {
                write!(f, "expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" "))
            }
            Self::Descriptor(name) => write!(f, "unrecognized descriptor: {name}"),
            Self::Hyphens(part) => write!(f, "too many hyphens: {part}"),
            Self::Slashes(part) => write!(f, "too many slashes: {part}"),
            Self::NotNumber(part, syntax) => {
                let why = if *syntax { "invalid syntax" } else { "value out of range" };
                write!(f, "failed to parse int from {part}: strconv.Atoi: parsing {part:?}: {why}")
            }
            Self::Negative(number, part) => write!(f, "negative number ({number}) not allowed: {part}"),
            Self::BelowMinimum(start, min, part) => {
                write!(f, "beginning of range ({start}) below minimum ({min}): {part}")
            }
            Self::AboveMaximum(end, max, part) => write!(f, "end of range ({end}) above maximum ({max}): {part}"),
            Self::Reversed(start, end, part) => {
                write!(f, "beginning of range ({start}) beyond end of range ({end}): {part}")
            }
            Self::ZeroStep(part) => write!(f, "step of range should be a positive number: {part}"),
            Self::Duration { schedule, reason } => write!(f, "failed to parse duration {schedule}: {reason}"),
        }
    }
}

impl std::error::Error for CronError {}

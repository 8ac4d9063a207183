//! When a static role's password is rotated: every `rotation_period`, or
//! at the times a `rotation_schedule` (standard five-field cron, as Vault
//! takes it) names, within an optional `rotation_window`; or only by hand.
//!
//! Pure functions of the role's rotation and the times given, so every
//! rule is tested with a made-up clock. The rules that keep a rotation
//! from firing twice:
//! - a period is due `period` after the last rotation, whatever happened
//!   since (a restart, a manual rotation);
//! - a schedule is due at its first time *after the last rotation*, so
//!   each scheduled time fires at most once; a time whose window passed
//!   while the broker was down is skipped, not caught up.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

/// The shortest period Vault accepts.
pub const MIN_PERIOD_SECS: u64 = 5;
/// The shortest window Vault accepts.
pub const MIN_WINDOW_SECS: u64 = 3600;
/// The longest period or window: ten years.
pub const MAX_SECS: u64 = 10 * 365 * 24 * 3600;
/// The longest cron expression taken.
const MAX_EXPRESSION: usize = 256;

/// What is wrong with a role's rotation settings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error(
        "rotation_schedule must be a cron expression of five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly: {0}"
    )]
    Cron(String),
    /// A period out of range.
    #[error("rotation_period must be from {MIN_PERIOD_SECS} seconds to ten years")]
    Period,
    /// A window out of range.
    #[error("rotation_window must be from one hour to ten years")]
    Window,
    /// A window without a schedule.
    #[error("rotation_window applies to rotation_schedule only")]
    WindowWithoutSchedule,
    /// Both ways at once.
    #[error("set rotation_period or rotation_schedule, not both")]
    Both,
}

/// How a role is rotated automatically.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// Every so many seconds after the last rotation.
    Period(u64),
    /// At the times a cron expression names.
    Schedule {
        /// The times, parsed.
        parsed: Box<cron::Schedule>,
        /// Seconds after a scheduled time it may still run (`None`: any
        /// time before the next one).
        window: Option<u64>,
    },
    /// Only `rotate-role` rotates it.
    Manual,
}

impl Rotation {
    /// The rotation for a role's settings (0 and "" mean unset), checked
    /// as Vault checks them.
    pub fn new(period: u64, schedule: &str, window: u64) -> Result<Self, ScheduleError> {
        let schedule = schedule.trim();
        match (period, schedule.is_empty()) {
            (0, true) if window > 0 => Err(ScheduleError::WindowWithoutSchedule),
            (0, true) => Ok(Self::Manual),
            (p, true) => {
                if window > 0 {
                    return Err(ScheduleError::WindowWithoutSchedule);
                }
                if !(MIN_PERIOD_SECS..=MAX_SECS).contains(&p) {
                    return Err(ScheduleError::Period);
                }
                Ok(Self::Period(p))
            }
            (0, false) => {
                if window > 0 && !(MIN_WINDOW_SECS..=MAX_SECS).contains(&window) {
                    return Err(ScheduleError::Window);
                }
                Ok(Self::Schedule {
                    parsed: Box::new(parse_cron(schedule)?),
                    window: (window > 0).then_some(window),
                })
            }
            (_, false) => Err(ScheduleError::Both),
        }
    }

    /// When the next automatic rotation is due, for a role last rotated at
    /// `last` (Unix seconds), as seen at `now`; `None` when it never is.
    pub fn next_due(&self, last: i64, now: i64) -> Option<i64> {
        match self {
            Self::Manual => None,
            Self::Period(p) => Some(last.saturating_add(i64::try_from(*p).ok()?)),
            Self::Schedule { parsed, window, .. } => {
                let first = fire_after(parsed, last)?;
                match window {
                    // Missed its window: the next time after now.
                    Some(w) if now >= first.saturating_add(i64::try_from(*w).ok()?) => {
                        fire_after(parsed, now)
                    }
                    _ => Some(first),
                }
            }
        }
    }

    /// Whether a rotation is due at `now` for a role last rotated at `last`.
    pub fn due(&self, last: i64, now: i64) -> bool {
        self.next_due(last, now).is_some_and(|t| t <= now)
    }
}

/// The first time `schedule` names strictly after `after` (Unix seconds).
fn fire_after(schedule: &cron::Schedule, after: i64) -> Option<i64> {
    let from: DateTime<Utc> = Utc.timestamp_opt(after, 0).single()?;
    schedule.after(&from).next().map(|t| t.timestamp())
}

/// Parses a standard cron expression (minutes first, day of week 0-7 with
/// 0 and 7 for Sunday) into the `cron` crate's form (seconds first, day of
/// week 1-7 with 1 for Sunday).
fn parse_cron(expression: &str) -> Result<cron::Schedule, ScheduleError> {
    let bad = |why: &str| ScheduleError::Cron(why.to_owned());
    if expression.len() > MAX_EXPRESSION {
        return Err(bad("too long"));
    }
    let translated = if let Some(name) = expression.strip_prefix('@') {
        match name {
            "hourly" | "daily" | "weekly" | "monthly" | "yearly" | "annually" => {
                expression.to_owned()
            }
            _ => return Err(bad("unknown @ form")),
        }
    } else {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields.as_slice() else {
            return Err(bad("it needs exactly five fields"));
        };
        format!("0 {minute} {hour} {dom} {month} {} *", day_of_week(dow)?)
    };
    cron::Schedule::from_str(&translated).map_err(|e| bad(&e.to_string()))
}

/// A day-of-week field from 0-7 (Sunday 0 or 7) to 1-7 (Sunday 1). Names
/// (`MON`, `Sun-Sat`) pass through; numbers, ranges and steps are spelled
/// out as lists, since a range can wrap past Saturday once shifted.
fn day_of_week(field: &str) -> Result<String, ScheduleError> {
    let bad = |why: &str| ScheduleError::Cron(format!("day of week: {why}"));
    let shifted = |d: u32| d % 7 + 1;
    let mut days: Vec<u32> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| (1..=7).contains(s))
                    .ok_or_else(|| bad("a step must be 1 to 7"))?,
            ),
            None => (item, 1),
        };
        if range.chars().any(|c| c.is_ascii_alphabetic()) {
            if step != 1 {
                return Err(bad("named days take no step"));
            }
            names.push(range);
            continue;
        }
        let (from, to) = match range {
            "*" | "?" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if item.contains('/') => (number(r)?, 6),
                None => (number(r)?, number(r)?),
            },
        };
        if from > to {
            return Err(bad("a range must go up"));
        }
        days.extend((from..=to).step_by(step as usize).map(shifted));
    }
    if days.is_empty() && names.is_empty() {
        return Err(bad("empty"));
    }
    days.sort_unstable();
    days.dedup();
    let mut parts: Vec<String> = days.iter().map(u32::to_string).collect();
    parts.extend(names.iter().map(|n| (*n).to_owned()));
    Ok(parts.join(","))
}

fn number(text: &str) -> Result<u32, ScheduleError> {
    text.parse::<u32>()
        .ok()
        .filter(|d| *d <= 7)
        .ok_or_else(|| ScheduleError::Cron("day of week: days are 0 to 7".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30 (a Monday) 00:00:00 UTC.
    const MONDAY: i64 = 1_795_996_800;

    fn schedule(expression: &str, window: u64) -> Rotation {
        Rotation::new(0, expression, window).unwrap()
    }

    #[test]
    fn the_settings_are_checked_as_vault_checks_them() {
        assert!(matches!(Rotation::new(0, "", 0), Ok(Rotation::Manual)));
        assert!(matches!(Rotation::new(60, "", 0), Ok(Rotation::Period(60))));
        assert_eq!(Rotation::new(4, "", 0).unwrap_err(), ScheduleError::Period);
        assert_eq!(
            Rotation::new(60, "* * * * *", 0).unwrap_err(),
            ScheduleError::Both
        );
        assert_eq!(
            Rotation::new(60, "", 3600).unwrap_err(),
            ScheduleError::WindowWithoutSchedule
        );
        assert_eq!(
            Rotation::new(0, "* * * * *", 60).unwrap_err(),
            ScheduleError::Window
        );
        for bad in [
            "* * * *",
            "* * * * * *",
            "0 0 * * 8",
            "61 * * * *",
            "@every 5m",
            "* * * * 5-1",
            "* * * * */0",
            "",
        ] {
            let r = Rotation::new(0, bad, 0);
            assert!(
                bad.is_empty() || matches!(r, Err(ScheduleError::Cron(_))),
                "{bad}: {r:?}"
            );
        }
        assert!(matches!(
            schedule("0 4 * * 1-5", 7200),
            Rotation::Schedule {
                window: Some(7200),
                ..
            }
        ));
    }

    #[test]
    fn a_date_that_never_comes_is_never_due() {
        // February 30th: parsed, and never due (not a search without end).
        if let Ok(r) = Rotation::new(0, "0 0 30 2 *", 0) {
            assert_eq!(r.next_due(MONDAY, MONDAY), None);
        }
    }

    #[test]
    fn a_period_is_due_that_long_after_the_last_rotation() {
        let r = Rotation::Period(3600);
        assert_eq!(r.next_due(MONDAY, MONDAY), Some(MONDAY + 3600));
        assert!(!r.due(MONDAY, MONDAY + 3599));
        assert!(r.due(MONDAY, MONDAY + 3600));
        // Down for a day: one rotation when it comes back, not 24.
        assert!(r.due(MONDAY, MONDAY + 86_400));
        assert!(!r.due(MONDAY + 86_400, MONDAY + 86_401));
        assert!(!Rotation::Manual.due(0, i64::MAX));
    }

    #[test]
    fn every_minute_fires_once_per_minute_and_never_twice_in_one() {
        let r = schedule("* * * * *", 0);
        // A clock that ticks every second for ten minutes, rotating when
        // due, as the worker does.
        let mut last = MONDAY + 5;
        let mut rotations = Vec::new();
        for now in MONDAY + 6..MONDAY + 606 {
            if r.due(last, now) {
                rotations.push(now);
                last = now;
            }
        }
        assert_eq!(rotations.len(), 10, "{rotations:?}");
        for pair in rotations.windows(2) {
            assert_eq!(pair[1] - pair[0], 60, "{rotations:?}");
        }
        assert!(rotations.iter().all(|t| t % 60 == 0));
        // A manual rotation mid-minute does not make the schedule fire
        // twice in the next minute.
        let manual = MONDAY + 630;
        assert_eq!(r.next_due(manual, manual), Some(MONDAY + 660));
    }

    #[test]
    fn a_missed_window_is_skipped_not_caught_up() {
        // Daily at 04:00, within two hours.
        let r = schedule("0 4 * * *", 7200);
        let four = MONDAY + 4 * 3600;
        assert_eq!(r.next_due(MONDAY, MONDAY), Some(four));
        assert!(r.due(MONDAY, four + 7199));
        // Down from 03:00 to 07:00: 04:00 is gone; tomorrow's is next.
        assert!(!r.due(MONDAY, four + 3 * 3600));
        assert_eq!(r.next_due(MONDAY, four + 3 * 3600), Some(four + 86_400));
        // Without a window, late is still due (once).
        let r = schedule("0 4 * * *", 0);
        assert!(r.due(MONDAY, four + 3 * 3600));
        assert!(!r.due(four + 3 * 3600, four + 3 * 3600 + 1));
    }

    #[test]
    fn days_of_week_are_the_standard_ones() {
        // 0 and 7 are Sunday, 1 Monday: MONDAY itself is a Monday.
        let monday = schedule("0 0 * * 1", 0);
        assert_eq!(monday.next_due(MONDAY - 1, MONDAY - 1), Some(MONDAY));
        for sunday in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN"] {
            let r = schedule(sunday, 0);
            assert_eq!(r.next_due(MONDAY, MONDAY), Some(MONDAY + 6 * 86_400), "{sunday}");
        }
        // Weekdays: Tuesday after Monday; Friday to Monday skips the weekend.
        let weekdays = schedule("0 0 * * 1-5", 0);
        assert_eq!(weekdays.next_due(MONDAY, MONDAY), Some(MONDAY + 86_400));
        let friday = MONDAY + 4 * 86_400;
        assert_eq!(weekdays.next_due(friday, friday), Some(MONDAY + 7 * 86_400));
        assert_eq!(day_of_week("5-7").unwrap(), "1,6,7");
        assert_eq!(day_of_week("*/2").unwrap(), "1,3,5,7");
    }

    proptest::proptest! {
        #[test]
        fn no_expression_panics(text in "\\PC{0,40}", fields in "[0-9*/,\\- A-Za-z?@]{0,30}") {
            for e in [text.as_str(), fields.as_str()] {
                if let Ok(r) = Rotation::new(0, e, 0) {
                    let _ = r.next_due(MONDAY, MONDAY);
                }
            }
        }

        #[test]
        fn a_schedule_never_fires_twice_for_one_time(
            minute in "(\\*|[0-5]?[0-9]|\\*/[1-9])",
            hour in "(\\*|1?[0-9]|2[0-3])",
            dow in "(\\*|[0-7]|[0-3]-[4-7])",
            start in 0i64..400_000_000,
        ) {
            let expression = format!("{minute} {hour} * * {dow}");
            let Ok(r) = Rotation::new(0, &expression, 0) else { return Ok(()) };
            let last = MONDAY + start;
            if let Some(next) = r.next_due(last, last) {
                proptest::prop_assert!(next > last);
                // Rotated at its time, the next is later still.
                proptest::prop_assert!(r.next_due(next, next).is_none_or(|n| n > next));
            }
        }
    }
}

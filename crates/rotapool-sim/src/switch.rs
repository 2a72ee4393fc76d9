//! The switch time: per rotation, from the first login the database rejected (the password changed under the
//! pool) to the first successful login with newer credentials, and which label of the secret those came from:
//! `AWSPENDING` (the single-user window, before finishSecret) or `AWSCURRENT` (after it). Measured from the
//! pool's login log and its source's read log, so it is the time the pool itself took to switch, with no wait
//! for a connection to expire in it.

use std::time::Instant;

use serde_json::{json, Value};

use crate::{
    clients::ReadEvent,
    login_log::{Fingerprint, LoginEvent, Outcome},
    metrics::nearest_rank,
    sim::RotationMark,
};

/// Where the credentials of the first successful login after a rejection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// `AWSPENDING`: the pool tried the pending version after a rejection, between setSecret and finishSecret.
    Pending,
    /// `AWSCURRENT`: the pool read a new current version after a rejection (after finishSecret).
    Current,
    /// Another label (`AWSPREVIOUS`), or no read of the secret returned those credentials.
    Other,
}

impl Path {
    /// Every path, in the report's order.
    const ALL: [Path; 3] = [Path::Pending, Path::Current, Path::Other];

    /// The report's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Pending => "AWSPENDING",
            Path::Current => "AWSCURRENT",
            Path::Other => "other",
        }
    }
}

/// What one rotation's switch looked like, in seconds since the run started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Switch {
    /// No login was rejected during the rotation: the pool had already moved on (or opened no connection).
    NoRejection,
    /// A login was rejected at `rejected_at`, and no login with newer credentials succeeded before the next
    /// rotation began.
    Never {
        /// The first rejected login.
        rejected_at: f64,
        /// Logins rejected in the rotation.
        rejections: usize,
    },
    /// The pool switched.
    Switched {
        /// The first rejected login.
        rejected_at: f64,
        /// The end of the first successful login with newer credentials.
        switched_at: f64,
        /// How long that login took, in milliseconds: the database's part of the switch.
        login_ms: f64,
        /// Where those credentials came from.
        path: Path,
        /// Logins rejected in the rotation.
        rejections: usize,
    },
}

impl Switch {
    /// The switch time in milliseconds and its path, if the pool switched after a rejection.
    pub(crate) fn millis(&self) -> Option<(Path, f64)> {
        match *self {
            Switch::Switched {
                rejected_at,
                switched_at,
                path,
                ..
            } => Some((path, (switched_at - rejected_at) * 1000.0)),
            _ => None,
        }
    }

    /// The pool's own share of the switch in milliseconds, and its path: the switch time less the login that ended
    /// it, so the time from the rejection until the pool began the login with the new credentials (its reads of
    /// the secret, and any wait for a login permit or a caller). Zero when that login began before the rejection:
    /// the pool had the new credentials already (a proactive read), and an older login was refused meanwhile.
    pub(crate) fn pool_share_millis(&self) -> Option<(Path, f64)> {
        match *self {
            Switch::Switched { login_ms, .. } => self
                .millis()
                .map(|(path, ms)| (path, (ms - login_ms).max(0.0))),
            _ => None,
        }
    }
}

/// The switches of a run, and how long its successful logins took: the yardstick they compare with.
#[derive(Debug, Clone)]
pub(crate) struct Switches {
    /// Per rotation.
    pub rotations: Vec<Switch>,
    /// Durations of the successful logins, in milliseconds, ascending.
    pub login_ms: Vec<f64>,
}

/// The switch of every rotation in `rotations`, from `logins` and `reads` (times as [`Instant`]s, `start` being
/// the run's zero). A rotation runs from its createSecret to the next rotation's.
pub(crate) fn measure(
    rotations: &[RotationMark],
    logins: &[LoginEvent],
    reads: &[ReadEvent],
    start: Instant,
) -> Switches {
    let mut login_ms: Vec<f64> = logins
        .iter()
        .filter(|l| l.outcome == Outcome::Ok)
        .map(|l| l.took.as_secs_f64() * 1000.0)
        .collect();
    login_ms.sort_by(f64::total_cmp);
    Switches {
        rotations: per_rotation(rotations, logins, reads, start),
        login_ms,
    }
}

/// The switch of each rotation.
fn per_rotation(
    rotations: &[RotationMark],
    logins: &[LoginEvent],
    reads: &[ReadEvent],
    start: Instant,
) -> Vec<Switch> {
    let seconds = |at: Instant| at.saturating_duration_since(start).as_secs_f64();
    let mut logins: Vec<(f64, Fingerprint, Outcome, f64)> = logins
        .iter()
        .map(|l| {
            (
                seconds(l.at),
                l.who,
                l.outcome,
                l.took.as_secs_f64() * 1000.0,
            )
        })
        .collect();
    logins.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Credentials in the order they were first used: a later one is a newer generation.
    let mut order: Vec<Fingerprint> = Vec::new();
    for &(_, who, _, _) in &logins {
        if !order.contains(&who) {
            order.push(who);
        }
    }
    let generation = |who: Fingerprint| order.iter().position(|&w| w == who);
    rotations
        .iter()
        .enumerate()
        .map(|(i, rotation)| {
            let until = rotations
                .get(i + 1)
                .map_or(f64::INFINITY, |next| next.started_at);
            let during: Vec<_> = logins
                .iter()
                .filter(|l| l.0 >= rotation.started_at && l.0 < until)
                .collect();
            let rejections = during.iter().filter(|l| l.2 == Outcome::Rejected).count();
            let Some(&&(rejected_at, old, _, _)) = during.iter().find(|l| l.2 == Outcome::Rejected)
            else {
                return Switch::NoRejection;
            };
            let newer = during.iter().find(|l| {
                l.0 >= rejected_at && l.2 == Outcome::Ok && generation(l.1) > generation(old)
            });
            match newer {
                None => Switch::Never {
                    rejected_at,
                    rejections,
                },
                Some(&&(switched_at, who, _, login_ms)) => Switch::Switched {
                    rejected_at,
                    switched_at,
                    login_ms,
                    path: path_of(reads, who, switched_at, &seconds),
                    rejections,
                },
            }
        })
        .collect()
}

/// The label of the last read before `at` that returned the credentials `who`: where the pool got them.
fn path_of(
    reads: &[ReadEvent],
    who: Fingerprint,
    at: f64,
    seconds: &impl Fn(Instant) -> f64,
) -> Path {
    let last = reads
        .iter()
        .filter(|r| r.who == who && seconds(r.at) <= at)
        .max_by(|a, b| a.at.cmp(&b.at));
    match last.map(|r| r.stage) {
        Some(rotapool_core::Stage::Pending) => Path::Pending,
        Some(rotapool_core::Stage::Current) => Path::Current,
        _ => Path::Other,
    }
}

/// Switch times of one path, in milliseconds, ascending: whole (`Switch::millis`) or the pool's share
/// (`Switch::pool_share_millis`).
fn times_of(
    switches: &[Switch],
    path: Path,
    figure: fn(&Switch) -> Option<(Path, f64)>,
) -> Vec<f64> {
    let mut times: Vec<f64> = switches
        .iter()
        .filter_map(figure)
        .filter(|&(p, _)| p == path)
        .map(|(_, ms)| ms)
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

impl Switches {
    /// The figures for the terminal: rotations, p50, p99 and max per path, the rotations that did not switch, and
    /// the successful logins' durations.
    pub(crate) fn table(&self, client: &str) -> String {
        let switches = &self.rotations;
        let mut out = format!(
            "switch time ({client}): first rejected login -> first successful login with the new credentials; \
             pool: the same less that login's own time\n\
             {:<12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}\n",
            "path", "rotations", "p50 ms", "p99 ms", "max ms", "pool p50 ms", "pool p99 ms"
        );
        for path in Path::ALL {
            let times = times_of(switches, path, Switch::millis);
            if times.is_empty() && path == Path::Other {
                continue;
            }
            let shares = times_of(switches, path, Switch::pool_share_millis);
            let figure = |times: &[f64], q: f64| {
                nearest_rank(times, q).map_or("-".to_owned(), |ms| format!("{ms:.2}"))
            };
            out.push_str(&format!(
                "{:<12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}\n",
                path.name(),
                times.len(),
                figure(&times, 0.5),
                figure(&times, 0.99),
                figure(&times, 1.0),
                figure(&shares, 0.5),
                figure(&shares, 0.99),
            ));
        }
        let count = |f: fn(&Switch) -> bool| switches.iter().filter(|s| f(s)).count();
        let login = |q: f64| nearest_rank(&self.login_ms, q).unwrap_or(0.0);
        out.push_str(&format!(
            "rotations with no rejected login: {}; rejected but never switched: {}\n\
         successful logins in the run: {}, p50/p99/max {:.2}/{:.2}/{:.2} ms\n",
            count(|s| matches!(s, Switch::NoRejection)),
            count(|s| matches!(s, Switch::Never { .. })),
            self.login_ms.len(),
            login(0.5),
            login(0.99),
            login(1.0),
        ));
        out
    }

    /// The figures as JSON: per path, per rotation, and the successful logins' durations.
    pub(crate) fn to_json(&self) -> Value {
        let switches = &self.rotations;
        let per_path: serde_json::Map<String, Value> = Path::ALL
            .into_iter()
            .map(|path| {
                let times = times_of(switches, path, Switch::millis);
                let shares = times_of(switches, path, Switch::pool_share_millis);
                let figures = json!({
                    "rotations": times.len(),
                    "p50_ms": nearest_rank(&times, 0.5),
                    "p99_ms": nearest_rank(&times, 0.99),
                    "max_ms": nearest_rank(&times, 1.0),
                    "pool_share_p50_ms": nearest_rank(&shares, 0.5),
                    "pool_share_p99_ms": nearest_rank(&shares, 0.99),
                    "pool_share_max_ms": nearest_rank(&shares, 1.0),
                });
                (path.name().to_owned(), figures)
            })
            .collect();
        let rotations: Vec<Value> = switches
            .iter()
            .map(|switch| match *switch {
                Switch::NoRejection => json!({ "path": null, "rejected_logins": 0 }),
                Switch::Never {
                    rejected_at,
                    rejections,
                } => json!({
                    "path": null,
                    "first_rejected_at_s": rejected_at,
                    "rejected_logins": rejections,
                }),
                Switch::Switched {
                    rejected_at,
                    switched_at,
                    login_ms,
                    path,
                    rejections,
                } => json!({
                    "path": path.name(),
                    "first_rejected_at_s": rejected_at,
                    "switched_at_s": switched_at,
                    "switch_ms": (switched_at - rejected_at) * 1000.0,
                    "switch_login_ms": login_ms,
                    "rejected_logins": rejections,
                }),
            })
            .collect();
        json!({
            "definition": "first rejected login after setSecret to the end of the first successful login with newer credentials; the pool's share is that less the login's own duration",
            "per_path": per_path,
            "rotations": rotations,
            "successful_login_ms": {
                "count": self.login_ms.len(),
                "p50": nearest_rank(&self.login_ms, 0.5),
                "p99": nearest_rank(&self.login_ms, 0.99),
                "max": nearest_rank(&self.login_ms, 1.0),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rotapool_core::{Credentials, Stage};

    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn login(start: Instant, ms: u64, who: Fingerprint, outcome: Outcome) -> LoginEvent {
        LoginEvent {
            at: at(start, ms),
            took: Duration::from_millis(2),
            who,
            outcome,
        }
    }

    fn read(start: Instant, ms: u64, stage: Stage, who: Fingerprint) -> ReadEvent {
        ReadEvent {
            at: at(start, ms),
            stage,
            who,
        }
    }

    fn rotation(started_ms: u64) -> RotationMark {
        let s = started_ms as f64 / 1000.0;
        RotationMark {
            started_at: s,
            set_at: s + 0.01,
            finish_at: s + 0.5,
        }
    }

    /// Three rotations: one switched through AWSPENDING, one through AWSCURRENT (AWSPENDING was read before it
    /// with the same credentials, but the pool's last read of them was AWSCURRENT), one with no rejection.
    #[test]
    fn each_rotation_gets_its_switch_time_and_path() {
        let start = Instant::now();
        let [a, b, c] = ["a", "b", "c"].map(|p| Fingerprint::of(&Credentials::new("u", p)));
        let logins = [
            login(start, 100, a, Outcome::Ok),
            // Rotation 1 (from 1000 ms): a rejected twice, then b through AWSPENDING.
            login(start, 1020, a, Outcome::Ok),
            login(start, 1030, a, Outcome::Rejected),
            login(start, 1031, a, Outcome::Rejected),
            login(start, 1034, b, Outcome::Ok),
            // Rotation 2 (from 2000 ms): b rejected after finishSecret, c read as AWSCURRENT.
            login(start, 2600, b, Outcome::Rejected),
            login(start, 2607, c, Outcome::Ok),
            login(start, 2610, b, Outcome::Rejected),
        ];
        let reads = [
            read(start, 0, Stage::Current, a),
            read(start, 1032, Stage::Current, a),
            read(start, 1033, Stage::Pending, b),
            read(start, 2100, Stage::Pending, c),
            read(start, 2605, Stage::Current, c),
        ];
        let rotations = [rotation(1000), rotation(2000), rotation(3000)];
        let switches = measure(&rotations, &logins, &reads, start).rotations;

        let close = |got: Option<(Path, f64)>, path: Path, ms: f64| {
            let (p, t) = got.expect("switched");
            assert_eq!(p, path);
            assert!((t - ms).abs() < 0.01, "{t} ms, expected {ms} ms");
        };
        close(switches[0].millis(), Path::Pending, 4.0);
        close(switches[1].millis(), Path::Current, 7.0);
        // Each login took 2 ms: the rest is the pool's.
        close(switches[0].pool_share_millis(), Path::Pending, 2.0);
        close(switches[1].pool_share_millis(), Path::Current, 5.0);
        assert_eq!(switches[2], Switch::NoRejection);
        assert!(matches!(
            switches[1],
            Switch::Switched { rejections: 2, .. }
        ));
    }

    #[test]
    fn a_rotation_whose_new_credentials_never_log_in_has_no_switch_time() {
        let start = Instant::now();
        let [a, b] = ["a", "b"].map(|p| Fingerprint::of(&Credentials::new("u", p)));
        // b logged in once before the rotation: only credentials newer than the rejected ones count.
        let logins = [
            login(start, 100, a, Outcome::Ok),
            login(start, 200, b, Outcome::Ok),
            login(start, 1030, b, Outcome::Rejected),
            login(start, 1040, a, Outcome::Ok),
        ];
        let switches = measure(&[rotation(1000)], &logins, &[], start).rotations;
        assert!(matches!(switches[0], Switch::Never { rejections: 1, .. }));
    }
}

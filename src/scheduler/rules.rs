//! What a task does next: trigger rules and retry delays, as Airflow 3 decides them.
//!
//! `evaluate` is Airflow's `TriggerRuleDep` (airflow-core `ti_deps/deps/trigger_rule_dep.py`)
//! as the scheduler runs it, with `flag_upstream_failed` on; `retry_delay` is
//! `TaskInstance.next_retry_datetime` (airflow-core `models/taskinstance.py`) less the
//! failed try's end date. Both are pure: the caller counts the upstream states and adds
//! the delay to the time the try ended. Setup/teardown tasks, mapped task groups and
//! `depends_on_past` do not exist in updraft, so their branches are left out.

use std::time::Duration;

use crate::model::{Task, TaskState, TriggerRule};

/// Counts of a task's direct upstream states: every task instance of each upstream task
/// (all map indexes of a mapped one, as Airflow's `TriggerRuleDep` counts them).
///
/// `done` counts the finished ones (success, failed, skipped, upstream_failed, removed:
/// Airflow's `State.finished`, `TaskState::is_finished` here) and `total` all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upstream {
    pub success: usize,
    pub skipped: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub removed: usize,
    pub done: usize,
    pub total: usize,
}

impl Upstream {
    /// Counts the states of a task's direct upstreams; `None` is "no status yet".
    pub fn tally(states: impl IntoIterator<Item = Option<TaskState>>) -> Upstream {
        let mut up = Upstream::default();
        for state in states {
            up.total += 1;
            let Some(state) = state else { continue };
            match state {
                TaskState::Success => up.success += 1,
                TaskState::Skipped => up.skipped += 1,
                TaskState::Failed => up.failed += 1,
                TaskState::UpstreamFailed => up.upstream_failed += 1,
                TaskState::Removed => up.removed += 1,
                _ => {}
            }
            if state.is_finished() {
                up.done += 1;
            }
        }
        up
    }

    /// Counts `state` in (`add`) or out.
    pub fn count(&mut self, state: Option<TaskState>, add: bool) {
        let one = Upstream::tally([state]);
        let apply = |n: &mut usize, d: usize| {
            if add { *n += d } else { *n -= d }
        };
        apply(&mut self.success, one.success);
        apply(&mut self.skipped, one.skipped);
        apply(&mut self.failed, one.failed);
        apply(&mut self.upstream_failed, one.upstream_failed);
        apply(&mut self.removed, one.removed);
        apply(&mut self.done, one.done);
        apply(&mut self.total, one.total);
    }

    /// Adds another task's counts.
    pub fn merge(&mut self, other: &Upstream) {
        self.success += other.success;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.upstream_failed += other.upstream_failed;
        self.removed += other.removed;
        self.done += other.done;
        self.total += other.total;
    }

    fn all_done(&self) -> bool {
        self.done >= self.total
    }
}

/// What the scheduler does with a task whose state is none or scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The trigger rule is met: the task may be queued.
    Run,
    /// Mark the task skipped.
    Skip,
    /// Mark the task upstream_failed.
    UpstreamFailed,
    /// Not yet: ask again when an upstream changes state.
    Wait,
}

/// What Airflow's `TriggerRuleDep` decides for a task in state none or scheduled, given its
/// direct upstreams (no upstreams: `Run`).
///
/// Airflow works in two steps, and so does this. First, with `flag_upstream_failed` (the
/// scheduler always sets it), some upstream mixes settle the task as skipped or
/// upstream_failed for good; that state wins even where the second step would pass, which
/// happens for `none_failed_min_one_success` when every upstream was skipped. Second, the
/// rule itself passes (`Run`) or not yet (`Wait`).
pub fn evaluate(rule: TriggerRule, up: &Upstream) -> Decision {
    // `_get_dep_statuses`: no upstream tasks, or `always`, passes before any counting.
    if up.total == 0 || rule == TriggerRule::Always {
        return Decision::Run;
    }
    if let Some(settled) = settle(rule, up) {
        return settled;
    }
    if is_met(rule, up) {
        Decision::Run
    } else {
        Decision::Wait
    }
}

/// The `if dep_context.flag_upstream_failed:` block of `_evaluate_direct_relatives`: the
/// mixes that decide the task's state without running it. Each arm follows the branch of
/// the same rule there, in the same order.
fn settle(rule: TriggerRule, up: &Upstream) -> Option<Decision> {
    use Decision::{Skip, UpstreamFailed};
    let any_failure = up.failed > 0 || up.upstream_failed > 0;
    match rule {
        // A failure anywhere fails it; else a skip anywhere skips it. Airflow's third
        // branch (`removed and success and map_index > -1`) is for mapped tasks only.
        TriggerRule::AllSuccess if any_failure => Some(UpstreamFailed),
        TriggerRule::AllSuccess if up.skipped > 0 => Some(Skip),
        // Any success or skip means not all failed.
        TriggerRule::AllFailed if up.success > 0 || up.skipped > 0 => Some(Skip),
        // Only once every upstream is done: all skipped skips it, no success fails it.
        TriggerRule::OneSuccess if up.all_done() && up.done == up.skipped => Some(Skip),
        TriggerRule::OneSuccess if up.all_done() && up.success == 0 => Some(UpstreamFailed),
        // All done and nothing failed (upstream_failed counts as failed here).
        TriggerRule::OneFailed if up.all_done() && !any_failure => Some(Skip),
        // All done with neither a success nor a failure (upstream_failed does not count).
        TriggerRule::OneDone if up.all_done() && up.failed == 0 && up.success == 0 => Some(Skip),
        TriggerRule::NoneFailed if any_failure => Some(UpstreamFailed),
        TriggerRule::NoneFailedMinOneSuccess if any_failure => Some(UpstreamFailed),
        TriggerRule::NoneFailedMinOneSuccess if up.skipped == up.total => Some(Skip),
        TriggerRule::NoneSkipped if up.skipped > 0 => Some(Skip),
        TriggerRule::AllSkipped if up.success > 0 || any_failure => Some(Skip),
        // `all_done` and `always` never settle the state.
        _ => None,
    }
}

/// The second half of `_evaluate_direct_relatives`: whether the rule passes. A removed
/// upstream instance (a mapped task's map index past its list after the list shrank) does
/// not hold `all_success`, `all_failed` or `none_failed` back: Airflow counts
/// `upstream - success - removed` (and so on) there. `all_skipped` does not subtract it.
fn is_met(rule: TriggerRule, up: &Upstream) -> bool {
    match rule {
        TriggerRule::OneSuccess => up.success > 0,
        TriggerRule::OneFailed => up.failed > 0 || up.upstream_failed > 0,
        TriggerRule::OneDone => up.success + up.failed > 0,
        TriggerRule::AllSuccess => up.success + up.removed >= up.total,
        TriggerRule::AllFailed => up.failed + up.upstream_failed + up.removed >= up.total,
        TriggerRule::AllDone => up.all_done(),
        // Both rules pass the same way; "min one success" lives only in `settle`.
        TriggerRule::NoneFailed | TriggerRule::NoneFailedMinOneSuccess => {
            up.success + up.skipped + up.removed >= up.total
        }
        TriggerRule::NoneSkipped => up.all_done() && up.skipped == 0,
        TriggerRule::AllSkipped => up.skipped >= up.total,
        TriggerRule::Always => true,
    }
}

/// Why `rule` does not let the task run yet, in the words of Airflow's `TriggerRuleDep`
/// (`Task's trigger rule 'all_success' requires ...`), or `None` when it passes. The
/// Core API's `dependencies` route shows it; the caller adds the upstream states.
pub fn unmet(rule: TriggerRule, up: &Upstream) -> Option<String> {
    if evaluate(rule, up) == Decision::Run {
        return None;
    }
    let not = |n: usize| up.total.saturating_sub(n);
    let need = match rule {
        TriggerRule::AllSuccess => format!(
            "requires all upstream tasks to have succeeded, but found {} non-success(es)",
            not(up.success + up.removed)
        ),
        TriggerRule::AllFailed => format!(
            "requires all upstream tasks to have failed, but found {} non-failure(s)",
            not(up.failed + up.upstream_failed + up.removed)
        ),
        TriggerRule::AllDone => format!(
            "requires all upstream tasks to have completed, but found {} task(s) that were not done",
            not(up.done)
        ),
        TriggerRule::AllSkipped => format!(
            "requires all upstream tasks to have been skipped, but found {} task(s) in non skipped state",
            not(up.skipped)
        ),
        TriggerRule::OneSuccess => {
            "requires one upstream task success, but none were found".to_string()
        }
        TriggerRule::OneFailed => {
            "requires one upstream task failure, but none were found".to_string()
        }
        TriggerRule::OneDone => {
            "requires at least one upstream task failure or success but none were failed or success"
                .to_string()
        }
        TriggerRule::NoneFailed | TriggerRule::NoneFailedMinOneSuccess
            if up.failed + up.upstream_failed == 0 && up.skipped < up.total =>
        {
            format!(
                "requires all upstream tasks to have succeeded or been skipped, but found {} task(s) not done",
                not(up.success + up.skipped + up.removed)
            )
        }
        TriggerRule::NoneFailed | TriggerRule::NoneFailedMinOneSuccess => format!(
            "requires all upstream tasks to have succeeded or been skipped, but found {} non-success(es)",
            up.failed + up.upstream_failed
        ),
        TriggerRule::NoneSkipped => format!(
            "requires all upstream tasks to not have been skipped, but found {} task(s) skipped or not done",
            not(up.done.saturating_sub(up.skipped))
        ),
        TriggerRule::Always => return None,
    };
    Some(format!("Task's trigger rule '{rule}' {need}."))
}

/// Airflow's `[core] max_task_retry_delay` default, in seconds: the ceiling of an
/// exponential backoff (`MAX_RETRY_DELAY` in the SDK's `abstractoperator.py`).
const MAX_BACKOFF_SECS: f64 = 24.0 * 60.0 * 60.0;

/// Airflow's backoff multiplier: the delay doubles with each try.
const BACKOFF_BASE: f64 = 2.0;

/// Delay before retrying a task whose try number `try_number` (1-based, the try that just
/// failed) failed, as Airflow's `next_retry_datetime` computes it.
///
/// Without backoff: `retry_delay`, uncapped (Airflow applies `max_retry_delay` only to
/// backoff). With backoff, Airflow takes `m = ceil(retry_delay * 2^(try_number - 1))`, at
/// least 1 second, adds a jitter of `sha1(dag_id#task_id#logical_date#try_number) mod m`,
/// caps the sum at one day, then at `max_retry_delay` if that is set and not zero. The
/// jitter needs the run and a SHA-1 to reproduce, so updraft takes the lower end of
/// Airflow's range, jitter 0: the delay doubles exactly with each try, and a retry never
/// comes later than Airflow's earliest possible one (the midpoint, the other natural
/// choice, would be as arbitrary and less predictable to users reading the docs).
pub fn retry_delay(task: &Task, try_number: u32) -> Duration {
    let delay = task.retry_delay_secs.max(0.0);
    if !task.retry_exponential_backoff {
        return seconds(delay);
    }
    // `try_number - 1` in Airflow's exponent, which is also -1 for a try number of 0.
    let exponent = i32::try_from(try_number)
        .unwrap_or(i32::MAX)
        .saturating_sub(1);
    let min_backoff = (delay * BACKOFF_BASE.powi(exponent)).ceil().max(1.0);
    // An infinite product (a large try number) lands on the cap too.
    let mut backoff = min_backoff.min(MAX_BACKOFF_SECS);
    if let Some(max) = task.max_retry_delay_secs.filter(|max| *max > 0.0) {
        backoff = backoff.min(max);
    }
    seconds(backoff)
}

fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Operator;
    use Decision::{Run, Skip, UpstreamFailed as UF, Wait};

    /// Upstreams written as one letter each: `s` success, `k` skipped, `f` failed,
    /// `u` upstream_failed, `r` removed, `-` no state yet, `R` running.
    fn up(states: &str) -> Upstream {
        Upstream::tally(states.chars().map(|c| match c {
            's' => Some(TaskState::Success),
            'k' => Some(TaskState::Skipped),
            'f' => Some(TaskState::Failed),
            'u' => Some(TaskState::UpstreamFailed),
            'r' => Some(TaskState::Removed),
            'R' => Some(TaskState::Running),
            '-' => None,
            _ => panic!("unknown state letter `{c}`"),
        }))
    }

    #[test]
    fn unmet_names_the_rule_and_what_holds_it_back() {
        let cases = [
            (
                TriggerRule::AllSuccess,
                "f",
                Some("requires all upstream tasks to have succeeded, but found 1 non-success(es)"),
            ),
            (
                TriggerRule::AllSuccess,
                "s-",
                Some("but found 1 non-success(es)"),
            ),
            (TriggerRule::AllSuccess, "ss", None),
            (
                TriggerRule::OneSuccess,
                "ff",
                Some("requires one upstream task success"),
            ),
            (
                TriggerRule::AllDone,
                "s-R",
                Some("found 2 task(s) that were not done"),
            ),
            (
                TriggerRule::NoneFailed,
                "sf",
                Some("but found 1 non-success(es)"),
            ),
            (TriggerRule::Always, "f", None),
        ];
        for (rule, states, want) in cases {
            let got = unmet(rule, &up(states));
            match want {
                None => assert_eq!(got, None, "{rule} `{states}`"),
                Some(part) => {
                    let got = got.unwrap_or_default();
                    assert!(
                        got.starts_with(&format!("Task's trigger rule '{rule}' ")),
                        "{got}"
                    );
                    assert!(got.contains(part), "{rule} `{states}`: {got}");
                }
            }
        }
    }

    fn check(rule: TriggerRule, cases: &[(&str, Decision)]) {
        for (states, want) in cases {
            assert_eq!(
                evaluate(rule, &up(states)),
                *want,
                "{rule} with upstreams `{states}`"
            );
        }
    }

    #[test]
    fn tally_counts_finished_states_as_done() {
        assert_eq!(
            up("skfur-R"),
            Upstream {
                success: 1,
                skipped: 1,
                failed: 1,
                upstream_failed: 1,
                removed: 1,
                done: 5,
                total: 7,
            }
        );
    }

    #[test]
    fn no_upstreams_always_run() {
        for rule in TriggerRule::ALL {
            assert_eq!(evaluate(*rule, &up("")), Run, "{rule}");
        }
    }

    #[test]
    fn all_success() {
        check(
            TriggerRule::AllSuccess,
            &[
                ("ss", Run),
                ("s-", Wait),
                ("sR", Wait),
                ("sk", Skip),
                ("k-", Skip),
                ("sf", UF),
                ("su", UF),
                // A failure outweighs a skip.
                ("kf", UF),
                // Airflow: `upstream - success - removed`, nothing left to wait for.
                ("sr", Run),
                ("sr-", Wait),
            ],
        );
    }

    #[test]
    fn all_failed() {
        check(
            TriggerRule::AllFailed,
            &[
                ("ff", Run),
                ("fu", Run),
                ("f-", Wait),
                ("fs", Skip),
                ("fk", Skip),
                ("s-", Skip),
                ("fr", Run),
            ],
        );
    }

    #[test]
    fn all_done() {
        check(
            TriggerRule::AllDone,
            &[
                ("sfkur", Run),
                ("ff", Run),
                ("s-", Wait),
                ("fR", Wait),
                ("kk", Run),
            ],
        );
    }

    #[test]
    fn all_skipped() {
        check(
            TriggerRule::AllSkipped,
            &[
                ("kk", Run),
                ("k-", Wait),
                ("ks", Skip),
                ("kf", Skip),
                ("ku", Skip),
                ("kr", Wait),
            ],
        );
    }

    #[test]
    fn one_success() {
        check(
            TriggerRule::OneSuccess,
            &[
                // One success is enough, the others need not be done.
                ("s-", Run),
                ("sf", Run),
                ("k-", Wait),
                ("f-", Wait),
                ("kk", Skip),
                ("kf", UF),
                ("ff", UF),
                ("uk", UF),
            ],
        );
    }

    #[test]
    fn one_failed() {
        check(
            TriggerRule::OneFailed,
            &[
                ("f-", Run),
                ("u-", Run),
                ("s-", Wait),
                ("ss", Skip),
                ("sk", Skip),
                ("fs", Run),
            ],
        );
    }

    #[test]
    fn one_done() {
        check(
            TriggerRule::OneDone,
            &[
                ("s-", Run),
                ("f-", Run),
                // Neither skipped nor upstream_failed counts as done here.
                ("k-", Wait),
                ("u-", Wait),
                ("kk", Skip),
                ("ku", Skip),
                ("ks", Run),
            ],
        );
    }

    #[test]
    fn none_failed() {
        check(
            TriggerRule::NoneFailed,
            &[
                ("ss", Run),
                ("sk", Run),
                ("kk", Run),
                ("s-", Wait),
                ("sf", UF),
                ("ku", UF),
                ("kr", Run),
            ],
        );
    }

    #[test]
    fn none_failed_min_one_success() {
        check(
            TriggerRule::NoneFailedMinOneSuccess,
            &[
                ("ss", Run),
                ("sk", Run),
                // All skipped: settled as skipped though the rule itself would pass.
                ("kk", Skip),
                ("k-", Wait),
                ("sf", UF),
                ("ku", UF),
            ],
        );
    }

    #[test]
    fn none_skipped() {
        check(
            TriggerRule::NoneSkipped,
            &[
                ("ss", Run),
                ("sf", Run),
                ("fu", Run),
                ("s-", Wait),
                ("sk", Skip),
                ("k-", Skip),
            ],
        );
    }

    #[test]
    fn always() {
        check(
            TriggerRule::Always,
            &[("--", Run), ("ff", Run), ("kk", Run), ("R-", Run)],
        );
    }

    fn task(delay: f64, backoff: bool, max: Option<f64>) -> Task {
        Task {
            task_id: "t".to_string(),
            line: 1,
            operator: Operator::Bash,
            task_group: None,
            upstream: vec![],
            bash_command: None,
            env: None,
            append_env: false,
            cwd: None,
            trigger_rule: TriggerRule::AllSuccess,
            retries: 3,
            retry_delay_secs: delay,
            retry_exponential_backoff: backoff,
            max_retry_delay_secs: max,
            execution_timeout_secs: None,
            pool: "default_pool".to_string(),
            pool_slots: 1,
            priority_weight: 1,
            owner: "airflow".to_string(),
            doc_md: None,
            python: None,
            callbacks: Vec::new(),
            map_index_template: None,
            max_active_tis_per_dag: None,
            max_active_tis_per_dagrun: None,
            mapped: None,
            hitl: None,
            sensor: None,
            args: None,
            outlets: Vec::new(),
            inlets: Vec::new(),
        }
    }

    #[test]
    fn retry_delays() {
        // (retry_delay, backoff, max_retry_delay, try_number, expected seconds)
        let cases = [
            // No backoff: the delay as given, every time, and never capped.
            (300.0, false, None, 1, 300.0),
            (300.0, false, None, 5, 300.0),
            (300.0, false, Some(60.0), 2, 300.0),
            (0.5, false, None, 1, 0.5),
            // Backoff doubles from the first retry on.
            (300.0, true, None, 1, 300.0),
            (300.0, true, None, 2, 600.0),
            (300.0, true, None, 3, 1200.0),
            // Whole seconds, rounded up, and at least one.
            (1.5, true, None, 2, 3.0),
            (0.3, true, None, 1, 1.0),
            (0.0, true, None, 4, 1.0),
            // Capped by max_retry_delay, and by a day regardless.
            (300.0, true, Some(1000.0), 3, 1000.0),
            (300.0, true, Some(1000.0), 2, 600.0),
            (300.0, true, None, 20, 86_400.0),
            (300.0, true, None, u32::MAX, 86_400.0),
            // A zero max_retry_delay is false in Python, so no cap.
            (300.0, true, Some(0.0), 2, 600.0),
        ];
        for (delay, backoff, max, try_number, want) in cases {
            let got = retry_delay(&task(delay, backoff, max), try_number);
            assert_eq!(
                got,
                Duration::from_secs_f64(want),
                "retry_delay={delay} backoff={backoff} max={max:?} try={try_number}"
            );
        }
    }
}

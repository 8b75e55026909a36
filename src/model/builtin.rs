//! The operators updraft runs inside the task supervisor (no child process): what each
//! is called, where Airflow imports it from, which arguments it takes and which of those
//! are templates. The DAG file parser, the Core API's task view and the supervisor all
//! read this one table.

use serde::{Deserialize, Serialize};

/// The operators updraft runs in-process (`executor::operators`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    Http,
    /// The same operator by its older name, kept as the class name Airflow shows.
    SimpleHttp,
    SqlExecuteQuery,
    SqlCheck,
    SqlValueCheck,
    TriggerDagRun,
    LatestOnly,
    BranchDayOfWeek,
    BranchDateTime,
}

/// One built-in operator as Airflow defines it.
pub struct BuiltinSpec {
    pub kind: Builtin,
    pub class: &'static str,
    /// The module Airflow 3's provider defines it in.
    pub module: &'static str,
    /// Every import path a DAG file may name it by: Airflow 3's, the older ones, the
    /// bare class name.
    pub paths: &'static [&'static str],
    /// Its own arguments (beyond BaseOperator's).
    pub args: &'static [&'static str],
    /// Those it cannot run without.
    pub required: &'static [&'static str],
    /// Airflow's `template_fields` for it.
    pub template_fields: &'static [&'static str],
    pub ui_color: &'static str,
}

const HTTP_ARGS: &[&str] = &[
    "http_conn_id",
    "endpoint",
    "method",
    "data",
    "headers",
    "response_check",
    "response_filter",
    "extra_options",
    "log_response",
    "auth_type",
    "tcp_keep_alive",
    "tcp_keep_alive_idle",
    "tcp_keep_alive_count",
    "tcp_keep_alive_interval",
    "deferrable",
    "retry_args",
    "pagination_function",
];
const HTTP_TEMPLATES: &[&str] = &["endpoint", "data", "headers"];

pub const BUILTINS: &[BuiltinSpec] = &[
    BuiltinSpec {
        kind: Builtin::Http,
        class: "HttpOperator",
        module: "airflow.providers.http.operators.http",
        paths: &[
            "airflow.providers.http.operators.http.HttpOperator",
            "HttpOperator",
        ],
        args: HTTP_ARGS,
        required: &[],
        template_fields: HTTP_TEMPLATES,
        ui_color: "#f4a460",
    },
    BuiltinSpec {
        kind: Builtin::SimpleHttp,
        class: "SimpleHttpOperator",
        module: "airflow.providers.http.operators.http",
        paths: &[
            "airflow.providers.http.operators.http.SimpleHttpOperator",
            "airflow.operators.http_operator.SimpleHttpOperator",
            "SimpleHttpOperator",
        ],
        args: HTTP_ARGS,
        required: &[],
        template_fields: HTTP_TEMPLATES,
        ui_color: "#f4a460",
    },
    BuiltinSpec {
        kind: Builtin::SqlExecuteQuery,
        class: "SQLExecuteQueryOperator",
        module: "airflow.providers.common.sql.operators.sql",
        paths: &[
            "airflow.providers.common.sql.operators.sql.SQLExecuteQueryOperator",
            "SQLExecuteQueryOperator",
        ],
        args: &[
            "conn_id",
            "database",
            "hook_params",
            "retry_on_failure",
            "sql",
            "autocommit",
            "parameters",
            "handler",
            "output_processor",
            "split_statements",
            "return_last",
            "show_return_value_in_logs",
            "requires_result_fetch",
        ],
        required: &["sql"],
        template_fields: &["sql", "parameters", "conn_id", "database", "hook_params"],
        ui_color: "#cdaaed",
    },
    BuiltinSpec {
        kind: Builtin::SqlCheck,
        class: "SQLCheckOperator",
        module: "airflow.providers.common.sql.operators.sql",
        paths: &[
            "airflow.providers.common.sql.operators.sql.SQLCheckOperator",
            "airflow.operators.sql.SQLCheckOperator",
            "airflow.operators.check_operator.CheckOperator",
            "SQLCheckOperator",
        ],
        args: &[
            "conn_id",
            "database",
            "hook_params",
            "retry_on_failure",
            "sql",
            "parameters",
        ],
        required: &["sql"],
        template_fields: &["sql", "conn_id", "database", "hook_params"],
        ui_color: "#fff7e6",
    },
    BuiltinSpec {
        kind: Builtin::SqlValueCheck,
        class: "SQLValueCheckOperator",
        module: "airflow.providers.common.sql.operators.sql",
        paths: &[
            "airflow.providers.common.sql.operators.sql.SQLValueCheckOperator",
            "airflow.operators.sql.SQLValueCheckOperator",
            "airflow.operators.check_operator.ValueCheckOperator",
            "SQLValueCheckOperator",
        ],
        args: &[
            "conn_id",
            "database",
            "hook_params",
            "retry_on_failure",
            "sql",
            "pass_value",
            "tolerance",
            "parameters",
        ],
        required: &["sql", "pass_value"],
        template_fields: &["sql", "pass_value", "conn_id", "database", "hook_params"],
        ui_color: "#fff7e6",
    },
    BuiltinSpec {
        kind: Builtin::TriggerDagRun,
        class: "TriggerDagRunOperator",
        module: "airflow.providers.standard.operators.trigger_dagrun",
        paths: &[
            "airflow.providers.standard.operators.trigger_dagrun.TriggerDagRunOperator",
            "airflow.operators.trigger_dagrun.TriggerDagRunOperator",
            "airflow.operators.dagrun_operator.TriggerDagRunOperator",
            "TriggerDagRunOperator",
        ],
        args: &[
            "trigger_dag_id",
            "trigger_run_id",
            "conf",
            "logical_date",
            "run_after",
            "reset_dag_run",
            "wait_for_completion",
            "poke_interval",
            "allowed_states",
            "failed_states",
            "skip_when_already_exists",
            "fail_when_dag_is_paused",
            "note",
            "deferrable",
            "openlineage_inject_parent_info",
        ],
        required: &["trigger_dag_id"],
        template_fields: &[
            "trigger_dag_id",
            "trigger_run_id",
            "logical_date",
            "conf",
            "wait_for_completion",
            "skip_when_already_exists",
        ],
        ui_color: "#ffefeb",
    },
    BuiltinSpec {
        kind: Builtin::LatestOnly,
        class: "LatestOnlyOperator",
        module: "airflow.providers.standard.operators.latest_only",
        paths: &[
            "airflow.providers.standard.operators.latest_only.LatestOnlyOperator",
            "airflow.operators.latest_only.LatestOnlyOperator",
            "airflow.operators.latest_only_operator.LatestOnlyOperator",
            "LatestOnlyOperator",
        ],
        args: &[],
        required: &[],
        template_fields: &[],
        ui_color: "#e9ffdb",
    },
    BuiltinSpec {
        kind: Builtin::BranchDayOfWeek,
        class: "BranchDayOfWeekOperator",
        module: "airflow.providers.standard.operators.weekday",
        paths: &[
            "airflow.providers.standard.operators.weekday.BranchDayOfWeekOperator",
            "airflow.operators.weekday.BranchDayOfWeekOperator",
            "BranchDayOfWeekOperator",
        ],
        args: &[
            "follow_task_ids_if_true",
            "follow_task_ids_if_false",
            "week_day",
            "use_task_logical_date",
        ],
        required: &[
            "follow_task_ids_if_true",
            "follow_task_ids_if_false",
            "week_day",
        ],
        template_fields: &[],
        ui_color: "#fff",
    },
    BuiltinSpec {
        kind: Builtin::BranchDateTime,
        class: "BranchDateTimeOperator",
        module: "airflow.providers.standard.operators.datetime",
        paths: &[
            "airflow.providers.standard.operators.datetime.BranchDateTimeOperator",
            "airflow.operators.datetime.BranchDateTimeOperator",
            "BranchDateTimeOperator",
        ],
        args: &[
            "follow_task_ids_if_true",
            "follow_task_ids_if_false",
            "target_lower",
            "target_upper",
            "use_task_logical_date",
        ],
        required: &["follow_task_ids_if_true", "follow_task_ids_if_false"],
        template_fields: &[],
        ui_color: "#fff",
    },
];

impl Builtin {
    pub fn spec(self) -> &'static BuiltinSpec {
        // Every variant has a row; the table is in declaration order.
        &BUILTINS[self as usize]
    }

    pub fn class_name(self) -> &'static str {
        self.spec().class
    }

    /// The built-in operator a DAG file's `operator:` path names.
    pub fn by_path(path: &str) -> Option<Builtin> {
        BUILTINS
            .iter()
            .find(|s| s.paths.contains(&path))
            .map(|s| s.kind)
    }

    /// Whether it chooses which tasks downstream run (skips the others).
    pub fn branches(self) -> bool {
        matches!(
            self,
            Builtin::LatestOnly | Builtin::BranchDayOfWeek | Builtin::BranchDateTime
        )
    }
}

/// Every import path of every built-in operator, for the "unknown operator" message.
pub fn builtin_paths() -> Vec<&'static str> {
    BUILTINS
        .iter()
        .flat_map(|s| s.paths.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_import_path() {
        let readme = include_str!("../../README.md");
        for s in BUILTINS {
            for p in s.paths.iter().filter(|p| p.contains('.')) {
                assert!(readme.contains(&format!("`{p}`")), "README.md lacks {p}");
            }
        }
    }

    #[test]
    fn the_table_is_in_declaration_order() {
        for (i, s) in BUILTINS.iter().enumerate() {
            assert_eq!(s.kind as usize, i, "{}", s.class);
            assert!(s.paths.iter().any(|p| p.ends_with(s.class)));
            for t in s.template_fields {
                assert!(s.args.contains(t), "{}: {t}", s.class);
            }
        }
    }
}

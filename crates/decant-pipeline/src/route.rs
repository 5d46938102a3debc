//! Routing and shaping: which output topic a source table goes to, which columns under which
//! names, which ops, and which policies apply. A [`Plan`] is the per-schema-version column
//! layout, computed once per schema the decoder hands over.

use std::collections::HashMap;
use std::sync::Arc;

use std::cmp::Ordering;

use decant_decode::decimal::{Decimal, parse_text};
use decant_decode::render::push_json_string;
use decant_model::sink::OutputShape;
use decant_model::{ColumnType, TableId, TableSchema};

use crate::config::{
    BadRecordPolicy, CondOp, Condition, Op, OutputConfig, PipelineConfig, TableConfig, ToastPolicy,
    TruncatePolicy,
};
use crate::render::MetaColumn;

/// Where one source table goes and what applies to it.
#[derive(Debug)]
pub struct Route {
    pub table: TableId,
    /// `schema.table`: the metrics label and the state-store namespace.
    pub label: String,
    pub topic: String,
    pub on_bad_record: BadRecordPolicy,
    pub on_toast_missing: ToastPolicy,
    pub on_truncate: TruncatePolicy,
    pub emit_upsert: bool,
    pub emit_delete: bool,
    /// `keep_state`: the table's TOAST values, key index and delete marks are kept.
    pub keep_state: bool,
    shape: Option<TableConfig>,
}

/// A value column: its index in the schema, its output name as a JSON string literal, and
/// whether PostgreSQL can leave it out as TOAST-unchanged (so its last value is kept).
#[derive(Debug, Clone)]
pub struct ValueColumn {
    pub index: usize,
    pub name: String,
    pub json_name: String,
    pub toastable: bool,
}

/// Column layout of one schema version under one route.
#[derive(Debug)]
pub struct Plan {
    /// Key columns in key order: (schema index, output name as a JSON string literal).
    pub key: Vec<(usize, String)>,
    pub value: Vec<ValueColumn>,
    /// The `where` conditions resolved against this schema (all must hold), or why they cannot
    /// be (a table error: every upsert is then a bad record).
    pub filter: Result<Vec<Predicate>, String>,
    /// Output column names and types (metadata columns included) and key names, for sinks
    /// that store typed columns.
    pub shape: Arc<OutputShape>,
    /// A first capacity for a row's state entry (names, framing and a short value per
    /// TOAST-able column), so building an entry rarely grows it.
    pub entry_capacity: usize,
    /// JSON document columns: (output column, schema index), for telling a JSON `null`
    /// document from SQL NULL (`Change::null_documents`).
    pub documents: Vec<(usize, usize)>,
}

/// How a predicate column's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Numeric,
    Boolean,
    Text,
}

/// A comparison literal, parsed for its column's [`Kind`].
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Num(Decimal),
    Bool(bool),
    Text(String),
}

/// One `where` condition resolved to a schema column.
#[derive(Debug, Clone)]
pub struct Predicate {
    /// Index of the column in the schema.
    pub index: usize,
    /// Source column name (the TOAST entry's key).
    pub name: String,
    op: CondOp,
    literals: Vec<Literal>,
}

/// A row value as compared by a predicate.
enum Val {
    Null,
    Num(Decimal),
    Bool(bool),
    Text(String),
    /// Not comparable (a float NaN or infinity in a numeric column).
    Other,
}

fn kind_of(ty: &ColumnType) -> Kind {
    match ty {
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::Float32
        | ColumnType::Float64
        | ColumnType::Decimal { .. }
        | ColumnType::DecimalText => Kind::Numeric,
        ColumnType::Boolean => Kind::Boolean,
        _ => Kind::Text,
    }
}

/// Compares two exact decimals at a common scale; `None` when rescaling overflows.
fn cmp_decimal(a: Decimal, b: Decimal) -> Option<Ordering> {
    let scale = a.scale.max(b.scale);
    Some(a.rescale(scale)?.cmp(&b.rescale(scale)?))
}

impl Predicate {
    /// Resolves `c` against `schema`.
    pub fn resolve(c: &Condition, schema: &TableSchema) -> Result<Predicate, String> {
        let (index, col) = schema
            .columns
            .iter()
            .enumerate()
            .find(|(_, col)| col.name == c.column)
            .ok_or_else(|| format!("where: table {} has no column {:?}", schema.table, c.column))?;
        let kind = kind_of(&col.ty);
        if kind == Kind::Boolean
            && matches!(c.op, CondOp::Lt | CondOp::Le | CondOp::Gt | CondOp::Ge)
        {
            return Err(format!(
                "where: column {:?} is boolean: only eq, ne, in, is_null, is_not_null apply",
                c.column
            ));
        }
        let literals = c
            .literals()
            .map_err(|e| format!("where: column {:?}: {e}", c.column))?
            .into_iter()
            .map(|text| match kind {
                Kind::Numeric => parse_text(&text).map(Literal::Num).ok_or_else(|| {
                    format!(
                        "where: column {:?} is numeric: {text:?} is not a number",
                        c.column
                    )
                }),
                Kind::Boolean => match text.as_str() {
                    "true" => Ok(Literal::Bool(true)),
                    "false" => Ok(Literal::Bool(false)),
                    _ => Err(format!(
                        "where: column {:?} is boolean: {text:?} is not true or false",
                        c.column
                    )),
                },
                Kind::Text => Ok(Literal::Text(text)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Predicate {
            index,
            name: col.name.clone(),
            op: c.op,
            literals,
        })
    }

    /// Whether the column's canonical JSON value `json` (as `push_value` renders it) passes.
    pub fn eval(&self, json: &str) -> bool {
        let v = parse_val(json, self.literals.first());
        match self.op {
            CondOp::IsNull => return matches!(v, Val::Null),
            CondOp::IsNotNull => return !matches!(v, Val::Null),
            _ => {}
        }
        if matches!(v, Val::Null) {
            return false;
        }
        let ord = |lit: &Literal| -> Option<Ordering> {
            match (&v, lit) {
                (Val::Num(a), Literal::Num(b)) => cmp_decimal(*a, *b),
                (Val::Bool(a), Literal::Bool(b)) => (a == b).then_some(Ordering::Equal),
                (Val::Text(a), Literal::Text(b)) => Some(a.as_str().cmp(b.as_str())),
                _ => None,
            }
        };
        let first = self.literals.first().and_then(ord);
        match self.op {
            CondOp::Eq => first == Some(Ordering::Equal),
            CondOp::Ne => first != Some(Ordering::Equal),
            CondOp::Lt => first == Some(Ordering::Less),
            CondOp::Le => matches!(first, Some(Ordering::Less | Ordering::Equal)),
            CondOp::Gt => first == Some(Ordering::Greater),
            CondOp::Ge => matches!(first, Some(Ordering::Greater | Ordering::Equal)),
            CondOp::In => self
                .literals
                .iter()
                .any(|l| ord(l) == Some(Ordering::Equal)),
            CondOp::IsNull | CondOp::IsNotNull => unreachable!("handled above"),
        }
    }
}

/// Reads a canonical JSON value for comparison with literals like `lit`.
fn parse_val(json: &str, lit: Option<&Literal>) -> Val {
    if json == "null" {
        return Val::Null;
    }
    let unquoted = || -> String {
        if json.starts_with('"') {
            serde_json::from_str::<String>(json).unwrap_or_else(|_| json.to_owned())
        } else {
            json.to_owned()
        }
    };
    match lit {
        Some(Literal::Num(_)) => {
            // Integers and floats render as JSON numbers, decimals as JSON strings.
            let text = json.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
            parse_text(text.unwrap_or(json)).map_or(Val::Other, Val::Num)
        }
        Some(Literal::Bool(_)) => match json {
            "true" => Val::Bool(true),
            "false" => Val::Bool(false),
            _ => Val::Other,
        },
        Some(Literal::Text(_)) => Val::Text(unquoted()),
        None => Val::Other,
    }
}

/// Types whose values Debezium can replace with the unavailable-value placeholder.
pub fn toastable(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::String
            | ColumnType::Json
            | ColumnType::Xml
            | ColumnType::Enum
            | ColumnType::Binary
            | ColumnType::List(_)
    )
}

/// Resolves tables to routes and schemas to plans, caching both.
pub struct Router {
    output: OutputConfig,
    defaults: crate::config::TablePolicy,
    tables: HashMap<TableId, TableConfig>,
    routes: HashMap<TableId, Arc<Route>>,
    /// Plans by schema identity; the schema is kept alive so its address is never reused.
    plans: HashMap<(usize, usize), (Arc<TableSchema>, Arc<Plan>)>,
    meta_columns: Vec<MetaColumn>,
}

impl Router {
    pub fn new(cfg: &PipelineConfig) -> Self {
        Router {
            output: cfg.output.clone(),
            defaults: cfg.defaults.clone(),
            tables: cfg
                .tables
                .iter()
                .map(|(k, v)| (TableId::parse(k), v.clone()))
                .collect(),
            routes: HashMap::new(),
            plans: HashMap::new(),
            meta_columns: meta_columns(cfg),
        }
    }

    /// Tables with their own configuration section.
    pub fn configured_tables(&self) -> Vec<TableId> {
        self.tables.keys().cloned().collect()
    }

    /// The output topic name for `table` first seen on `source_topic`.
    pub fn topic_for(&self, table: &TableId, source_topic: &str) -> String {
        if let Some(t) = self.tables.get(table).and_then(|c| c.topic.clone()) {
            return t;
        }
        self.output
            .topic_template
            .replace("{prefix}", &self.output.prefix)
            .replace("{schema}", &table.namespace)
            .replace("{table}", &table.name)
            .replace("{topic}", source_topic)
            .replace("..", ".")
            .trim_matches('.')
            .to_owned()
    }

    /// The route of `table`; the bool is true when it was created by this call (the caller
    /// then makes sure its topic exists).
    pub fn route(&mut self, table: &TableId, source_topic: &str) -> (Arc<Route>, bool) {
        if let Some(r) = self.routes.get(table) {
            return (r.clone(), false);
        }
        let shape = self.tables.get(table).cloned();
        let d = &self.defaults;
        let ops = shape
            .as_ref()
            .and_then(|s| s.ops.clone())
            .unwrap_or_else(|| d.ops.clone());
        let route = Arc::new(Route {
            table: table.clone(),
            label: table.to_string(),
            topic: self.topic_for(table, source_topic),
            on_bad_record: shape
                .as_ref()
                .and_then(|s| s.on_bad_record)
                .unwrap_or(d.on_bad_record),
            on_toast_missing: shape
                .as_ref()
                .and_then(|s| s.on_toast_missing)
                .unwrap_or(d.on_toast_missing),
            on_truncate: shape
                .as_ref()
                .and_then(|s| s.on_truncate)
                .unwrap_or(d.on_truncate),
            emit_upsert: ops.contains(&Op::Upsert),
            emit_delete: ops.contains(&Op::Delete),
            keep_state: shape
                .as_ref()
                .and_then(|s| s.keep_state)
                .unwrap_or(d.keep_state),
            shape,
        });
        self.routes.insert(table.clone(), route.clone());
        (route, true)
    }

    /// Forgets a route (after its topic could not be prepared) so it is retried.
    pub fn forget(&mut self, table: &TableId) {
        self.routes.remove(table);
    }

    /// The plan of `schema` under `route`.
    pub fn plan(&mut self, route: &Route, schema: &Arc<TableSchema>) -> Arc<Plan> {
        let id = (Arc::as_ptr(schema) as usize, route as *const Route as usize);
        if let Some((_, p)) = self.plans.get(&id) {
            return p.clone();
        }
        let plan = Arc::new(build_plan(
            route.shape.as_ref(),
            schema,
            &self.meta_columns,
            route.keep_state,
        ));
        self.plans.insert(id, (schema.clone(), plan.clone()));
        plan
    }
}

fn quoted(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_json_string(name, &mut s);
    s
}

fn build_plan(
    shape: Option<&TableConfig>,
    schema: &TableSchema,
    meta_columns: &[MetaColumn],
    keep_state: bool,
) -> Plan {
    let out_name = |name: &str| -> String {
        shape
            .and_then(|s| s.rename.get(name).cloned())
            .unwrap_or_else(|| name.to_owned())
    };
    let key: Vec<(usize, String)> = schema
        .key
        .iter()
        .map(|&i| (i, quoted(&out_name(&schema.columns[i].name))))
        .collect();
    let value: Vec<ValueColumn> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| match shape {
            None => true,
            Some(s) => {
                s.columns.as_ref().is_none_or(|cols| cols.contains(&c.name))
                    && !s.exclude.contains(&c.name)
            }
        })
        .map(|(i, c)| {
            let name = out_name(&c.name);
            ValueColumn {
                index: i,
                json_name: quoted(&name),
                name: c.name.clone(),
                // Without state nothing is kept, so no row builds an entry.
                toastable: keep_state && toastable(&c.ty),
            }
        })
        .collect();
    let filter = shape.map_or(Ok(Vec::new()), |s| {
        s.filter
            .iter()
            .map(|c| Predicate::resolve(c, schema))
            .collect()
    });
    let mut columns: Vec<(String, ColumnType)> = value
        .iter()
        .map(|v| (out_name(&v.name), schema.columns[v.index].ty.clone()))
        .collect();
    for m in meta_columns {
        columns.push((m.name().to_owned(), m.column_type()));
    }
    let mut sources: Vec<Option<usize>> = value.iter().map(|v| Some(v.index)).collect();
    sources.extend(meta_columns.iter().map(|_| None));
    let shape = Arc::new(OutputShape {
        columns,
        sources,
        key: schema
            .key
            .iter()
            .map(|&i| out_name(&schema.columns[i].name))
            .collect(),
        key_types: schema
            .key
            .iter()
            .map(|&i| schema.columns[i].ty.clone())
            .collect(),
    });
    let entry_capacity = value
        .iter()
        .filter(|c| c.toastable)
        .map(|c| c.name.len() + 6 + 24)
        .sum();
    let documents = value
        .iter()
        .enumerate()
        .filter(|(_, c)| schema.columns[c.index].ty == ColumnType::Json)
        .map(|(out, c)| (out, c.index))
        .collect();
    Plan {
        key,
        value,
        filter,
        shape,
        entry_capacity,
        documents,
    }
}

/// The configured metadata columns (`output.metadata_columns`), in order.
pub fn meta_columns(cfg: &PipelineConfig) -> Vec<MetaColumn> {
    cfg.output
        .metadata_columns
        .iter()
        .filter_map(|m| MetaColumn::parse(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use decant_model::Column;

    fn schema() -> Arc<TableSchema> {
        Arc::new(TableSchema::new(
            TableId::new("inv", "products"),
            vec![
                Column::new("id", ColumnType::Int64, false),
                Column::new("name", ColumnType::String, true),
                Column::new("secret", ColumnType::String, true),
                Column::new("qty", ColumnType::Int32, true),
            ],
            vec![0],
        ))
    }

    #[test]
    fn template_overrides_projection_and_rename() {
        let mut cfg = PipelineConfig::default();
        cfg.output.prefix = "out".into();
        cfg.tables.insert(
            "inv.products".into(),
            TableConfig {
                exclude: vec!["secret".into()],
                rename: [("id".to_owned(), "product_id".to_owned())].into(),
                ops: Some(vec![Op::Upsert]),
                ..Default::default()
            },
        );
        cfg.tables.insert(
            "inv.other".into(),
            TableConfig {
                topic: Some("custom".into()),
                ..Default::default()
            },
        );
        let mut r = Router::new(&cfg);
        let (route, new) = r.route(&TableId::new("inv", "products"), "src.inv.products");
        assert!(new);
        assert_eq!(route.topic, "out.inv.products");
        assert!(route.emit_upsert && !route.emit_delete);
        assert!(!r.route(&TableId::new("inv", "products"), "x").1);
        assert_eq!(
            r.route(&TableId::new("inv", "other"), "x").0.topic,
            "custom"
        );
        let plan = r.plan(&route, &schema());
        assert_eq!(plan.key, vec![(0, "\"product_id\"".to_owned())]);
        let names: Vec<&str> = plan.value.iter().map(|c| c.json_name.as_str()).collect();
        assert_eq!(names, ["\"product_id\"", "\"name\"", "\"qty\""]);
        assert!(plan.value[1].toastable && !plan.value[2].toastable);
    }

    fn filter_schema() -> TableSchema {
        TableSchema::new(
            TableId::new("shop", "orders"),
            vec![
                Column::new("id", ColumnType::Int64, false),
                Column::new("status", ColumnType::String, true),
                Column::new(
                    "total",
                    ColumnType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                    true,
                ),
                Column::new("paid", ColumnType::Boolean, true),
                Column::new("qty", ColumnType::Int32, true),
            ],
            vec![0],
        )
    }

    fn pred(
        column: &str,
        op: CondOp,
        value: Option<serde_json::Value>,
    ) -> Result<Predicate, String> {
        let c = Condition {
            column: column.into(),
            op,
            value,
        };
        Predicate::resolve(&c, &filter_schema())
    }

    fn p(column: &str, op: CondOp, value: serde_json::Value) -> Predicate {
        pred(column, op, Some(value)).expect("resolves")
    }

    #[test]
    fn each_op_on_text_and_integers() {
        use serde_json::json;
        let s = "\"shipped\"";
        assert!(p("status", CondOp::Eq, json!("shipped")).eval(s));
        assert!(!p("status", CondOp::Ne, json!("shipped")).eval(s));
        assert!(p("status", CondOp::Lt, json!("zzz")).eval(s));
        assert!(p("status", CondOp::Le, json!("shipped")).eval(s));
        assert!(p("status", CondOp::Gt, json!("paid")).eval(s));
        assert!(p("status", CondOp::Ge, json!("shipped")).eval(s));
        assert!(!p("status", CondOp::Ge, json!("t")).eval(s));
        assert!(p("status", CondOp::In, json!(["new", "shipped"])).eval(s));
        assert!(!p("status", CondOp::In, json!(["new"])).eval(s));
        // Escapes are compared on the unescaped text.
        assert!(p("status", CondOp::Eq, json!("a\"b")).eval("\"a\\\"b\""));
        // Integers compare numerically, not as text ("9" < "10").
        assert!(p("qty", CondOp::Lt, json!(10)).eval("9"));
        assert!(p("qty", CondOp::Gt, json!("-1")).eval("0"));
        assert!(p("qty", CondOp::In, json!([1, "9"])).eval("9"));
        // Booleans by equality.
        assert!(p("paid", CondOp::Eq, json!(true)).eval("true"));
        assert!(p("paid", CondOp::Ne, json!("true")).eval("false"));
    }

    #[test]
    fn decimals_compare_exactly() {
        use serde_json::json;
        assert!(!p("total", CondOp::Gt, json!("100.1")).eval("\"100.10\""));
        assert!(p("total", CondOp::Eq, json!("100.1")).eval("\"100.10\""));
        assert!(p("total", CondOp::Gt, json!("100.1")).eval("\"100.11\""));
        assert!(p("total", CondOp::Gt, json!(100)).eval("\"100.01\""));
        assert!(p("total", CondOp::Lt, json!("1e3")).eval("\"999.99\""));
        // Beyond f64 precision.
        assert!(
            p("total", CondOp::Gt, json!("12345678901234567.01")).eval("\"12345678901234567.02\"")
        );
        assert!(p("qty", CondOp::Ne, json!(1)).eval("\"NaN\""));
        assert!(!p("qty", CondOp::Gt, json!(1)).eval("\"NaN\""));
    }

    #[test]
    fn nulls_fail_comparisons_and_match_is_null() {
        use serde_json::json;
        assert!(
            pred("status", CondOp::IsNull, None)
                .expect("resolves")
                .eval("null")
        );
        assert!(
            !pred("status", CondOp::IsNull, None)
                .expect("resolves")
                .eval("\"x\"")
        );
        assert!(
            pred("status", CondOp::IsNotNull, None)
                .expect("resolves")
                .eval("\"x\"")
        );
        assert!(
            !pred("status", CondOp::IsNotNull, None)
                .expect("resolves")
                .eval("null")
        );
        for op in [CondOp::Eq, CondOp::Ne, CondOp::Lt, CondOp::Gt] {
            assert!(!p("status", op, json!("x")).eval("null"), "{op:?}");
        }
        assert!(!p("status", CondOp::In, json!(["x"])).eval("null"));
    }

    #[test]
    fn table_errors_are_found_against_the_schema() {
        use serde_json::json;
        let e = pred("nope", CondOp::Eq, Some(json!("x"))).expect_err("unknown column");
        assert!(e.contains("no column \"nope\""), "{e}");
        assert!(pred("paid", CondOp::Gt, Some(json!(true))).is_err());
        assert!(pred("total", CondOp::Eq, Some(json!("abc"))).is_err());
        assert!(pred("paid", CondOp::Eq, Some(json!("yes"))).is_err());

        let mut cfg = PipelineConfig::default();
        cfg.tables.insert(
            "shop.orders".into(),
            TableConfig {
                filter: vec![Condition {
                    column: "nope".into(),
                    op: CondOp::Eq,
                    value: Some(json!("x")),
                }],
                ..Default::default()
            },
        );
        let mut r = Router::new(&cfg);
        let (route, _) = r.route(&TableId::new("shop", "orders"), "src");
        assert!(r.plan(&route, &Arc::new(filter_schema())).filter.is_err());
        let (other, _) = r.route(&TableId::new("shop", "other"), "src");
        let plan = r.plan(&other, &Arc::new(filter_schema()));
        assert!(plan.filter.as_ref().is_ok_and(Vec::is_empty));
    }
}

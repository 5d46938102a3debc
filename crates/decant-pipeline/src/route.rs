//! Routing and shaping: which output topic a source table goes to, which columns under which
//! names, which ops, and which policies apply. A [`Plan`] is the per-schema-version column
//! layout, computed once per schema the decoder hands over.

use std::collections::HashMap;
use std::sync::Arc;

use decant_decode::render::push_json_string;
use decant_model::{ColumnType, TableId, TableSchema};

use crate::config::{
    BadRecordPolicy, Op, OutputConfig, PipelineConfig, TableConfig, ToastPolicy, TruncatePolicy,
};

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
        let plan = Arc::new(build_plan(route.shape.as_ref(), schema));
        self.plans.insert(id, (schema.clone(), plan.clone()));
        plan
    }
}

fn quoted(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_json_string(name, &mut s);
    s
}

fn build_plan(shape: Option<&TableConfig>, schema: &TableSchema) -> Plan {
    let out_name = |name: &str| -> String {
        shape
            .and_then(|s| s.rename.get(name).cloned())
            .unwrap_or_else(|| name.to_owned())
    };
    let key = schema
        .key
        .iter()
        .map(|&i| (i, quoted(&out_name(&schema.columns[i].name))))
        .collect();
    let value = schema
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
                toastable: toastable(&c.ty),
            }
        })
        .collect();
    Plan { key, value }
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
}

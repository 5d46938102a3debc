//! The catalog connection: a SQL catalog (SQLite or PostgreSQL) or a REST catalog, over local
//! or S3 storage; the tables of one pipeline, their creation and schema evolution, and writer
//! epochs.
//!
//! Every metadata change decant makes (a new schema, a claimed epoch, a row delta) goes through
//! [`LakeTable::publish`], which publishes it only if the table is still what the change was
//! built on ([`crate::catalog`]); a conflict is seen, never silently rebased.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use iceberg::io::{LocalFsStorageFactory, StorageFactory};
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent, TableUpdate};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};
use iceberg_storage_opendal::OpenDalStorageFactory;
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::catalog::{CatalogCommit, RestCommit, RestSettings, SqlCommit};
use crate::error::IcebergError;
use crate::types::TableLayout;

/// Table property naming the pipeline that owns (writes) a table.
pub const PIPELINE_PROPERTY: &str = "decant.pipeline";
/// Table property holding the epoch of the writer that last claimed the table.
pub const EPOCH_PROPERTY: &str = "decant.writer-epoch";

/// Where the tables live and who writes them.
#[derive(Debug, Clone)]
pub struct LakeConfig {
    /// `sqlite:<path>` (created if missing) or `postgres://…` (SQL catalog), or
    /// `http(s)://host[:port][/path]` (REST catalog; the base URI without `/v1`).
    pub catalog_uri: String,
    /// Catalog name inside the catalog database (several catalogs can share one database).
    pub catalog_name: String,
    /// SQL catalog: the warehouse root, a local directory (created if missing) or `s3://…`.
    /// REST catalog: the `warehouse` sent to the server (its meaning is the server's: a path,
    /// a warehouse or catalog name); empty sends none.
    pub warehouse: String,
    /// REST catalog settings as iceberg's REST client names them: `token`, `credential`
    /// (`client_id:secret`), `oauth2-server-uri`, `scope`, `prefix`, `header.<name>`, ….
    pub catalog_properties: HashMap<String, String>,
    /// This pipeline's id: stored on its tables and in every snapshot it commits.
    pub pipeline: String,
    /// Roll data files at this size.
    pub target_file_size_bytes: usize,
    /// Extra properties for tables decant creates.
    pub table_properties: HashMap<String, String>,
    /// Storage properties (`s3.endpoint`, `s3.access-key-id`, `s3.secret-access-key`,
    /// `s3.region`, `s3.path-style-access`, …) for an `s3://` warehouse.
    pub storage_properties: HashMap<String, String>,
}

/// What listing tables and keeping credentials fresh need beyond the `Catalog` trait.
enum Backend {
    /// The catalog database itself: `list_namespaces` of iceberg's SQL catalog only returns
    /// first levels, so tables are listed by one query.
    Sql {
        pool: AnyPool,
        catalog: String,
        postgres: bool,
    },
    /// iceberg's REST client never refreshes a token it fetched with client credentials; it is
    /// told to get a new one every `refresh`.
    Rest {
        client: Arc<RestCatalog>,
        refresh: Option<std::time::Duration>,
        refreshed: std::sync::Mutex<std::time::Instant>,
    },
}

pub struct Lake {
    pub(crate) rt: tokio::runtime::Runtime,
    /// The same runtime as iceberg wants it for the tables it builds.
    io_rt: iceberg::Runtime,
    catalog: Arc<dyn Catalog>,
    committer: Arc<dyn CatalogCommit>,
    backend: Backend,
    pub(crate) cfg: LakeConfig,
    /// This process's writer epoch: newer processes of the same pipeline have larger ones.
    epoch: i64,
}

fn warehouse_url(dir: &str) -> Result<String, IcebergError> {
    let path = dir.strip_prefix("file://").unwrap_or(dir);
    std::fs::create_dir_all(path).map_err(|e| IcebergError::Iceberg {
        what: format!("creating the warehouse directory {path}"),
        source: Box::new(iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            e.to_string(),
        )),
    })?;
    let abs = std::fs::canonicalize(path).map_err(|e| IcebergError::Iceberg {
        what: format!("resolving the warehouse directory {path}"),
        source: Box::new(iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            e.to_string(),
        )),
    })?;
    Ok(format!("file://{}", abs.display()))
}

/// sqlx opens SQLite files read-write-create only when asked; the parent directory must exist.
fn catalog_uri(uri: &str) -> String {
    let Some(rest) = uri.strip_prefix("sqlite:") else {
        return uri.to_owned();
    };
    let path = rest.trim_start_matches("//");
    let file = path.split('?').next().unwrap_or(path);
    if let Some(parent) = Path::new(file).parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
    if rest.contains("mode=") {
        uri.to_owned()
    } else if rest.contains('?') {
        format!("{uri}&mode=rwc")
    } else {
        format!("{uri}?mode=rwc")
    }
}

impl Lake {
    /// Connects (creating the catalog tables and the warehouse directory if missing) and picks
    /// this process's writer epoch.
    pub fn open(cfg: LakeConfig) -> Result<Lake, IcebergError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("decant-iceberg")
            .enable_all()
            .build()
            .map_err(IcebergError::Runtime)?;
        let rest = is_rest_uri(&cfg.catalog_uri);
        let on_s3 = cfg.warehouse.starts_with("s3://")
            || cfg.warehouse.starts_with("s3a://")
            || cfg.storage_properties.keys().any(|k| k.starts_with("s3."));
        let warehouse = if rest || on_s3 {
            cfg.warehouse.trim_end_matches('/').to_owned()
        } else {
            warehouse_url(&cfg.warehouse)?
        };
        let storage: Arc<dyn StorageFactory> = if on_s3 {
            Arc::new(OpenDalStorageFactory::S3 {
                customized_credential_load: None,
            })
        } else {
            Arc::new(LocalFsStorageFactory)
        };
        let io_rt = iceberg::Runtime::new(&rt);
        let (catalog, committer, backend) = if rest {
            rt.block_on(open_rest(&cfg, &warehouse, storage.clone(), io_rt.clone()))?
        } else {
            rt.block_on(open_sql(
                &cfg,
                &warehouse,
                storage.clone(),
                &cfg.storage_properties,
            ))?
        };
        let epoch = epoch_now();
        Ok(Lake {
            io_rt,
            rt,
            catalog,
            committer,
            backend,
            cfg: LakeConfig { warehouse, ..cfg },
            epoch,
        })
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    pub fn pipeline(&self) -> &str {
        &self.cfg.pipeline
    }

    /// Every table of this pipeline in the catalog, at any namespace depth: (namespace, name).
    pub fn all_pipeline_tables(&self) -> Result<Vec<(String, String)>, IcebergError> {
        self.keep_token_fresh();
        let idents = self.rt.block_on(self.all_tables())?;
        let mut out = Vec::new();
        for ident in idents {
            let t = self.reload(&ident)?;
            if t.metadata().properties().get(PIPELINE_PROPERTY) == Some(&self.cfg.pipeline) {
                out.push((ident.namespace().join("."), ident.name().to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    async fn all_tables(&self) -> Result<Vec<TableIdent>, IcebergError> {
        match &self.backend {
            Backend::Sql {
                pool,
                catalog,
                postgres,
            } => {
                let sql = if *postgres {
                    "SELECT table_namespace, table_name FROM iceberg_tables WHERE catalog_name = $1"
                } else {
                    "SELECT table_namespace, table_name FROM iceberg_tables WHERE catalog_name = ?"
                };
                let rows: Vec<(String, String)> = sqlx::query_as(sql)
                    .bind(catalog.as_str())
                    .fetch_all(pool)
                    .await
                    .map_err(IcebergError::sql("listing the catalog's tables"))?;
                rows.into_iter()
                    .map(|(ns, name)| Ok(TableIdent::new(namespace_ident(&ns)?, name)))
                    .collect()
            }
            Backend::Rest { .. } => {
                let mut out = Vec::new();
                let mut queue = self
                    .catalog
                    .list_namespaces(None)
                    .await
                    .map_err(IcebergError::iceberg("listing namespaces"))?;
                let mut seen = std::collections::HashSet::new();
                while let Some(ns) = queue.pop() {
                    if !seen.insert(ns.clone()) {
                        continue;
                    }
                    out.extend(self.catalog.list_tables(&ns).await.map_err(
                        IcebergError::iceberg(format!("listing tables of {}", ns.join("."))),
                    )?);
                    match self.catalog.list_namespaces(Some(&ns)).await {
                        Ok(children) => queue.extend(
                            children
                                .into_iter()
                                .filter(|c| c.len() > ns.len() && c.starts_with(&ns[..])),
                        ),
                        // A server without nested namespaces.
                        Err(e)
                            if matches!(
                                e.kind(),
                                iceberg::ErrorKind::NamespaceNotFound
                                    | iceberg::ErrorKind::FeatureUnsupported
                            ) => {}
                        Err(e) => {
                            return Err(IcebergError::Iceberg {
                                what: format!("listing namespaces under {}", ns.join(".")),
                                source: Box::new(e),
                            });
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Gives iceberg's REST client a new token when the last one is due (see [`Backend::Rest`]).
    fn keep_token_fresh(&self) {
        let Backend::Rest {
            client,
            refresh: Some(every),
            refreshed,
        } = &self.backend
        else {
            return;
        };
        let Ok(mut last) = refreshed.lock() else {
            return;
        };
        if last.elapsed() < *every {
            return;
        }
        // On failure the old token stays; the next call tries again.
        match self.rt.block_on(client.regenerate_token()) {
            Ok(()) => *last = std::time::Instant::now(),
            Err(e) => tracing::warn!(error = %e, "refreshing the REST catalog token"),
        }
    }

    /// Loads an existing table, or `None`.
    pub fn load(&self, namespace: &str, name: &str) -> Result<Option<LakeTable>, IcebergError> {
        self.keep_token_fresh();
        let ident = TableIdent::new(namespace_ident(namespace)?, name.to_owned());
        let exists = self
            .rt
            .block_on(self.catalog.table_exists(&ident))
            .map_err(IcebergError::iceberg(format!("looking up {ident}")))?;
        if !exists {
            return Ok(None);
        }
        let table = self.reload(&ident)?;
        Ok(Some(LakeTable {
            label: format!("{namespace}.{name}"),
            ident,
            table,
            committer: self.committer.clone(),
        }))
    }

    pub(crate) fn reload(&self, ident: &TableIdent) -> Result<Table, IcebergError> {
        self.keep_token_fresh();
        self.rt
            .block_on(self.catalog.load_table(ident))
            .map_err(IcebergError::iceberg(format!("loading {ident}")))
    }

    /// Opens the table for writing `layout`: creates it (v2, unpartitioned, key as identifier
    /// fields) if missing, adds new nullable columns, and claims it with this writer's epoch.
    pub fn open_for_write(
        &self,
        namespace: &str,
        name: &str,
        layout: &TableLayout,
    ) -> Result<LakeTable, IcebergError> {
        let label = format!("{namespace}.{name}");
        let mut table = match self.load(namespace, name)? {
            Some(t) => t,
            None => self.create(namespace, name, layout)?,
        };
        if let Some(owner) = table.table.metadata().properties().get(PIPELINE_PROPERTY)
            && owner != &self.cfg.pipeline
        {
            return Err(IcebergError::Inconsistent {
                table: label,
                why: format!(
                    "the table belongs to pipeline {owner:?}, not {:?}: two pipelines must not write one table",
                    self.cfg.pipeline
                ),
            });
        }
        table.claim(self)?;
        table.evolve(self, layout)?;
        Ok(table)
    }

    /// Loads an existing table and claims it with this writer's epoch.
    pub fn claim(&self, namespace: &str, name: &str) -> Result<LakeTable, IcebergError> {
        let mut table = self
            .load(namespace, name)?
            .ok_or_else(|| IcebergError::Inconsistent {
                table: format!("{namespace}.{name}"),
                why: "listed in the catalog but not loadable".into(),
            })?;
        table.claim(self)?;
        Ok(table)
    }

    fn create(
        &self,
        namespace: &str,
        name: &str,
        layout: &TableLayout,
    ) -> Result<LakeTable, IcebergError> {
        let label = format!("{namespace}.{name}");
        let schema = layout.fresh_schema(&label)?;
        self.keep_token_fresh();
        let ns = namespace_ident(namespace)?;
        let mut props = self.cfg.table_properties.clone();
        props.insert(PIPELINE_PROPERTY.into(), self.cfg.pipeline.clone());
        props.insert(EPOCH_PROPERTY.into(), self.epoch.to_string());
        props.insert("write.format.default".into(), "parquet".into());
        props.insert("write.upsert.enabled".into(), "true".into());
        props
            .entry("write.parquet.compression-codec".into())
            .or_insert_with(|| "zstd".into());
        let created = self.rt.block_on(async {
            if !self
                .catalog
                .namespace_exists(&ns)
                .await
                .map_err(IcebergError::iceberg("checking the namespace"))?
            {
                match self.catalog.create_namespace(&ns, HashMap::new()).await {
                    Ok(_) => {}
                    // Another process created it meanwhile.
                    Err(_) if self.catalog.namespace_exists(&ns).await.unwrap_or(false) => {}
                    Err(e) => {
                        return Err(IcebergError::Iceberg {
                            what: format!("creating namespace {namespace}"),
                            source: Box::new(e),
                        });
                    }
                }
            }
            let creation = TableCreation::builder()
                .name(name.to_owned())
                .schema(schema)
                .properties(props)
                .build();
            self.catalog
                .create_table(&ns, creation)
                .await
                .map(Some)
                .or_else(|e| {
                    if e.kind() == iceberg::ErrorKind::TableAlreadyExists {
                        Ok(None)
                    } else {
                        Err(IcebergError::Iceberg {
                            what: format!("creating table {label}"),
                            source: Box::new(e),
                        })
                    }
                })
        })?;
        match created {
            Some(table) => {
                tracing::info!(table = %label, "created Iceberg table");
                Ok(LakeTable {
                    label,
                    ident: table.identifier().clone(),
                    table,
                    committer: self.committer.clone(),
                })
            }
            None => self
                .load(namespace, name)?
                .ok_or_else(|| IcebergError::Inconsistent {
                    table: label,
                    why: "the table was reported as existing but cannot be loaded".into(),
                }),
        }
    }
}

pub(crate) fn is_rest_uri(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

type Connected = (Arc<dyn Catalog>, Arc<dyn CatalogCommit>, Backend);

async fn open_sql(
    cfg: &LakeConfig,
    warehouse: &str,
    storage: Arc<dyn StorageFactory>,
    storage_props: &HashMap<String, String>,
) -> Result<Connected, IcebergError> {
    let uri = catalog_uri(&cfg.catalog_uri);
    let postgres = uri.starts_with("postgres");
    let bind = if postgres {
        SqlBindStyle::DollarNumeric
    } else {
        SqlBindStyle::QMark
    };
    let catalog = SqlCatalogBuilder::default()
        .uri(uri.clone())
        .warehouse_location(warehouse.to_owned())
        .sql_bind_style(bind)
        .with_storage_factory(storage)
        .load(cfg.catalog_name.clone(), storage_props.clone())
        .await
        .map_err(IcebergError::iceberg(format!(
            "opening the SQL catalog at {}",
            cfg.catalog_uri
        )))?;
    install_default_drivers();
    let pool: AnyPool = AnyPoolOptions::new()
        .max_connections(2)
        .connect(&uri)
        .await
        .map_err(IcebergError::sql(format!(
            "connecting to {}",
            cfg.catalog_uri
        )))?;
    Ok((
        Arc::new(catalog),
        Arc::new(SqlCommit::new(
            pool.clone(),
            cfg.catalog_name.clone(),
            postgres,
        )),
        Backend::Sql {
            pool,
            catalog: cfg.catalog_name.clone(),
            postgres,
        },
    ))
}

async fn open_rest(
    cfg: &LakeConfig,
    warehouse: &str,
    storage: Arc<dyn StorageFactory>,
    io_rt: iceberg::Runtime,
) -> Result<Connected, IcebergError> {
    let settings = RestSettings {
        uri: cfg.catalog_uri.trim_end_matches('/').to_owned(),
        warehouse: (!warehouse.is_empty()).then(|| warehouse.to_owned()),
        props: cfg.catalog_properties.clone(),
    };
    // The server's configuration (prefix, overridden URI) is read once here and handed to the
    // catalog client as explicit settings, so both talk to the same endpoints.
    let (committer, merged) = RestCommit::connect(settings).await?;
    let mut props = merged.props;
    // Storage settings reach the tables' file I/O through the catalog's properties.
    props.extend(cfg.storage_properties.clone());
    props.insert("uri".into(), merged.uri.clone());
    if let Some(w) = merged.warehouse {
        props.insert("warehouse".into(), w);
    }
    let catalog = RestCatalogBuilder::default()
        .with_storage_factory(storage)
        .with_runtime(io_rt)
        .load(cfg.catalog_name.clone(), props)
        .await
        .map_err(IcebergError::iceberg(format!(
            "opening the REST catalog at {}",
            cfg.catalog_uri
        )))?;
    let client = Arc::new(catalog);
    let backend = Backend::Rest {
        client: client.clone(),
        refresh: committer.token_refresh_interval(),
        refreshed: std::sync::Mutex::new(std::time::Instant::now()),
    };
    Ok((client, Arc::new(committer), backend))
}

fn namespace_ident(namespace: &str) -> Result<NamespaceIdent, IcebergError> {
    NamespaceIdent::from_strs(namespace.split('.'))
        .map_err(IcebergError::iceberg(format!("namespace {namespace:?}")))
}

/// Microseconds since the epoch: a later process start has a larger epoch.
fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// One destination table, as last loaded or committed by this process.
pub struct LakeTable {
    pub label: String,
    pub(crate) ident: TableIdent,
    pub(crate) table: Table,
    committer: Arc<dyn CatalogCommit>,
}

impl LakeTable {
    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn metadata_location(&self) -> Option<&str> {
        self.table.metadata_location()
    }

    /// The epoch that last claimed the table (0 if none did).
    pub fn claimed_epoch(&self) -> i64 {
        claimed_epoch(self.table.metadata())
    }

    pub(crate) fn check_epoch(&self, lake: &Lake) -> Result<(), IcebergError> {
        let theirs = self.claimed_epoch();
        if theirs > lake.epoch {
            return Err(IcebergError::Fenced {
                table: self.label.clone(),
                pipeline: lake.cfg.pipeline.clone(),
                ours: lake.epoch,
                theirs,
            });
        }
        Ok(())
    }

    /// Records this writer's epoch on the table (unless a newer writer already did: fenced).
    fn claim(&mut self, lake: &Lake) -> Result<(), IcebergError> {
        for _ in 0..20 {
            self.check_epoch(lake)?;
            if self.claimed_epoch() == lake.epoch {
                return Ok(());
            }
            let mut updates = vec![TableUpdate::SetProperties {
                updates: HashMap::from([(EPOCH_PROPERTY.to_owned(), lake.epoch.to_string())]),
            }];
            if !self.committer.sees_property_changes() {
                updates.extend(self.claim_snapshot(lake)?);
            }
            if self.publish(lake, updates)? {
                tracing::info!(table = %self.label, epoch = lake.epoch, "claimed the table for this writer");
                return Ok(());
            }
            self.reload(lake)?;
        }
        Err(IcebergError::Conflict {
            table: self.label.clone(),
            attempts: 20,
        })
    }

    /// Adds the layout's new columns to the table's schema.
    pub fn evolve(&mut self, lake: &Lake, layout: &TableLayout) -> Result<bool, IcebergError> {
        for _ in 0..20 {
            self.check_epoch(lake)?;
            let md = self.table.metadata();
            let Some(schema) =
                layout.evolve(&self.label, md.current_schema(), md.last_column_id())?
            else {
                return Ok(false);
            };
            let updates = vec![
                TableUpdate::AddSchema { schema },
                TableUpdate::SetCurrentSchema { schema_id: -1 },
            ];
            if self.publish(lake, updates)? {
                tracing::info!(table = %self.label, "added new columns to the Iceberg table");
                return Ok(true);
            }
            self.reload(lake)?;
        }
        Err(IcebergError::Conflict {
            table: self.label.clone(),
            attempts: 20,
        })
    }

    /// Publishes `updates` on top of the loaded metadata if nobody changed the table meanwhile.
    /// `Ok(false)`: somebody did (reload and rebuild).
    pub(crate) fn publish(
        &mut self,
        lake: &Lake,
        updates: Vec<TableUpdate>,
    ) -> Result<bool, IcebergError> {
        let Some((location, metadata)) = lake
            .rt
            .block_on(self.committer.commit(&self.table, updates))?
        else {
            return Ok(false);
        };
        self.table = Table::builder()
            .file_io(self.table.file_io().clone())
            .identifier(self.ident.clone())
            .metadata_location(location)
            .metadata(metadata)
            .runtime(lake.io_rt.clone())
            .build()
            .map_err(IcebergError::iceberg(format!(
                "table {}: loading the committed metadata",
                self.label
            )))?;
        Ok(true)
    }

    /// A snapshot that changes no data and carries this writer's epoch with the table's
    /// progress unchanged: on a REST catalog, a claim must move the main branch, because only
    /// that makes an older writer's next commit (which requires the branch it built on) fail.
    fn claim_snapshot(&self, lake: &Lake) -> Result<Vec<TableUpdate>, IcebergError> {
        let progress = self.progress(lake)?;
        let claim_id = format!("claim-{}", lake.epoch);
        let (snapshot, _) =
            lake.rt
                .block_on(self.build_snapshot(lake, &[], &claim_id, &progress.offsets))?;
        Ok(crate::commit::on_main(snapshot))
    }

    /// Every live row at the current snapshot, through iceberg's own reader (which applies
    /// equality and position deletes): what any engine reading the table sees.
    pub fn scan(&self, lake: &Lake) -> Result<Vec<arrow_array::RecordBatch>, IcebergError> {
        use futures::TryStreamExt;
        let what = format!("table {}: scanning", self.label);
        lake.rt.block_on(async {
            let stream = self
                .table
                .scan()
                .select_all()
                .build()
                .map_err(IcebergError::iceberg(what.clone()))?
                .to_arrow()
                .await
                .map_err(IcebergError::iceberg(what.clone()))?;
            stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(IcebergError::iceberg(what.clone()))
        })
    }

    pub(crate) fn reload(&mut self, lake: &Lake) -> Result<(), IcebergError> {
        let table = lake.reload(&self.ident)?;
        let (was, is) = (self.table.metadata().uuid(), table.metadata().uuid());
        if was != is {
            // Files written for the old table must not land in a new one with offsets that
            // claim its history.
            return Err(IcebergError::Inconsistent {
                table: self.label.clone(),
                why: format!(
                    "the table was dropped and re-created while this process wrote to it (uuid {was} is now {is})"
                ),
            });
        }
        self.table = table;
        Ok(())
    }
}

pub(crate) fn claimed_epoch(md: &TableMetadata) -> i64 {
    md.properties()
        .get(EPOCH_PROPERTY)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

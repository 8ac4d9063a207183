//! A backend's path table: each path's [`PathInfo`] (what it is, as data)
//! with its handlers. The table routes a request to a handler; the API
//! reads the infos for 405s, help, OpenAPI, audit and access.

use futures_util::future::BoxFuture;

use super::field::{self, AuditAs};
use super::{Access, Error, Field, Operation, Params, Pattern, PatternError, Reply, Request};

/// A handler: an async function of the backend and the request.
pub type Handler<S> = for<'a> fn(&'a S, &'a Request) -> BoxFuture<'a, Result<Reply, Error>>;

/// An existence check: whether the object a write names exists, so the
/// write is an update rather than a create.
pub type ExistenceCheck<S> = for<'a> fn(&'a S, &'a Request) -> BoxFuture<'a, Result<bool, Error>>;

/// A path, as data: everything about it but its handlers.
#[derive(Debug, Clone)]
pub struct PathInfo {
    /// The pattern, relative to the mount.
    pub pattern: Pattern,
    /// One line.
    pub summary: &'static str,
    /// More, for `?help=1`.
    pub description: &'static str,
    /// The body fields it takes.
    pub fields: Vec<Field>,
    /// Who may call it.
    pub access: Access,
    /// The operations it serves, sorted.
    pub operations: Vec<Operation>,
    /// Whether writes are told apart as create and update.
    pub existence_check: bool,
    /// The fields the audit log writes in clear (see [`Self::clear_fields`]).
    clear: std::sync::Arc<[&'static str]>,
}

impl PathInfo {
    /// The operation whose handler serves `op` here: `op` itself, or for a
    /// write the other write (a path that declares only `update` takes
    /// creates too, as Vault's does); `None` is a 405.
    pub fn serving(&self, op: Operation) -> Option<Operation> {
        if self.operations.contains(&op) {
            return Some(op);
        }
        let other = match op {
            Operation::Create => Operation::Update,
            Operation::Update => Operation::Create,
            _ => return None,
        };
        self.operations.contains(&other).then_some(other)
    }

    /// The fields the audit log writes in clear (shared: every request to
    /// the path hands them to the audit log).
    pub fn clear_fields(&self) -> std::sync::Arc<[&'static str]> {
        self.clear.clone()
    }
}

/// A path under construction: `Path::new("roles/{name}").read(..)...`.
pub struct Path<S> {
    pattern: &'static str,
    summary: &'static str,
    description: &'static str,
    fields: Vec<Field>,
    access: Access,
    handlers: Vec<(Operation, Handler<S>)>,
    exists: Option<ExistenceCheck<S>>,
}

impl<S> Path<S> {
    /// A path matching `pattern` (see [`Pattern`]).
    pub fn new(pattern: &'static str) -> Self {
        Self {
            pattern,
            summary: "",
            description: "",
            fields: Vec::new(),
            access: Access::Token,
            handlers: Vec::new(),
            exists: None,
        }
    }

    /// One line saying what it is.
    pub fn summary(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }

    /// More, for `?help=1`.
    pub fn description(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// A body field.
    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// Who may call it (default: [`Access::Token`]).
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Serves `op` with `handler`.
    pub fn on(mut self, op: Operation, handler: Handler<S>) -> Self {
        self.handlers.push((op, handler));
        self
    }

    /// Serves reads.
    pub fn read(self, handler: Handler<S>) -> Self {
        self.on(Operation::Read, handler)
    }

    /// Serves lists.
    pub fn list(self, handler: Handler<S>) -> Self {
        self.on(Operation::List, handler)
    }

    /// Serves writes (creates too, unless [`Self::create`] is given).
    pub fn update(self, handler: Handler<S>) -> Self {
        self.on(Operation::Update, handler)
    }

    /// Serves writes of what does not exist yet (with [`Self::exists`]).
    pub fn create(self, handler: Handler<S>) -> Self {
        self.on(Operation::Create, handler)
    }

    /// Serves patches.
    pub fn patch(self, handler: Handler<S>) -> Self {
        self.on(Operation::Patch, handler)
    }

    /// Serves deletes.
    pub fn delete(self, handler: Handler<S>) -> Self {
        self.on(Operation::Delete, handler)
    }

    /// Tells creates from updates.
    pub fn exists(mut self, check: ExistenceCheck<S>) -> Self {
        self.exists = Some(check);
        self
    }
}

impl<S> std::fmt::Debug for Path<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Path")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

/// Where a request path landed in a table.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path's index in [`Table::paths`].
    pub index: usize,
    /// Its parameters' values.
    pub params: Params,
}

/// The first of `paths` matching `path` (relative to the mount;
/// surrounding `/` ignored).
pub fn find(paths: &[PathInfo], path: &str) -> Option<Route> {
    let path = path.trim_matches('/');
    let parts: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    paths.iter().enumerate().find_map(|(index, info)| {
        info.pattern
            .matches_segments(&parts)
            .map(|params| Route { index, params })
    })
}

struct Handlers<S> {
    ops: Vec<(Operation, Handler<S>)>,
    exists: Option<ExistenceCheck<S>>,
}

/// A backend's paths, in the order they are matched (first match wins).
pub struct Table<S> {
    infos: Vec<PathInfo>,
    handlers: Vec<Handlers<S>>,
}

impl<S> std::fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.infos.iter().map(|i| i.pattern.as_str()))
            .finish()
    }
}

impl<S> Table<S> {
    /// Builds the table, checking each pattern, that no path serves an
    /// operation twice or none at all, and that no two paths have the same
    /// pattern.
    pub fn new(paths: Vec<Path<S>>) -> Result<Self, PatternError> {
        let mut infos = Vec::with_capacity(paths.len());
        let mut handlers = Vec::with_capacity(paths.len());
        for path in paths {
            let pattern = Pattern::parse(path.pattern)?;
            let mut operations: Vec<Operation> = path.handlers.iter().map(|(op, _)| *op).collect();
            operations.sort();
            let before = operations.len();
            operations.dedup();
            if before != operations.len() || operations.is_empty() {
                return Err(Pattern::invalid(
                    path.pattern,
                    "each operation once, at least one",
                ));
            }
            if infos.iter().any(|i: &PathInfo| i.pattern == pattern) {
                return Err(Pattern::invalid(path.pattern, "declared twice"));
            }
            let clear = path
                .fields
                .iter()
                .filter(|f| f.audit == AuditAs::Clear)
                .map(|f| f.name)
                .collect();
            infos.push(PathInfo {
                clear,
                pattern,
                summary: path.summary,
                description: path.description,
                fields: path.fields,
                access: path.access,
                operations,
                existence_check: path.exists.is_some(),
            });
            handlers.push(Handlers {
                ops: path.handlers,
                exists: path.exists,
            });
        }
        Ok(Self { infos, handlers })
    }

    /// The paths, as data.
    pub fn paths(&self) -> &[PathInfo] {
        &self.infos
    }

    /// The first path matching `path` (see [`find`]).
    pub fn find(&self, path: &str) -> Option<Route> {
        find(&self.infos, path)
    }

    /// Runs the path's existence check: `None` when it has none.
    pub async fn exists(
        &self,
        backend: &S,
        index: usize,
        request: &Request,
    ) -> Result<Option<bool>, Error> {
        match self.handlers.get(index).and_then(|h| h.exists) {
            Some(check) => check(backend, request).await.map(Some),
            None => Ok(None),
        }
    }

    /// Checks the body against the path's fields and runs the handler that
    /// serves the request's operation. The API answers 405 before calling
    /// this for an operation the path does not serve; here it is a 500.
    pub async fn call(&self, backend: &S, index: usize, request: &Request) -> Result<Reply, Error> {
        let (Some(info), Some(handlers)) = (self.infos.get(index), self.handlers.get(index)) else {
            return Err(Error::Internal(format!("no path {index} in the table")));
        };
        let op = info.serving(request.operation).ok_or_else(|| {
            Error::Internal(format!(
                "{} is not served on {}",
                request.operation,
                info.pattern.as_str()
            ))
        })?;
        if op != Operation::Delete && op != Operation::Read && op != Operation::List {
            field::check(&info.fields, &request.data)?;
        }
        let handler = handlers
            .ops
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, h)| *h)
            .ok_or_else(|| Error::Internal(format!("no handler for {op}")))?;
        handler(backend, request).await
    }
}

impl Pattern {
    fn invalid(pattern: &str, why: &'static str) -> PatternError {
        PatternError::new(pattern, why)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use super::*;
    use crate::framework::{Caller, Mount, StorageView, data, no_content};

    /// A backend with one object that exists or not.
    #[derive(Default)]
    struct Toy {
        exists: AtomicBool,
    }

    impl Toy {
        async fn read(&self, req: &Request) -> Result<Reply, Error> {
            Ok(data(json!({ "name": req.param("name")? })))
        }
        async fn create(&self, _req: &Request) -> Result<Reply, Error> {
            Ok(data(json!({ "created": true })))
        }
        async fn update(&self, _req: &Request) -> Result<Reply, Error> {
            Ok(no_content())
        }
        async fn exists(&self, _req: &Request) -> Result<bool, Error> {
            Ok(self.exists.load(Ordering::SeqCst))
        }
    }

    fn table() -> Table<Toy> {
        Table::new(vec![
            Path::<Toy>::new("things")
                .summary("none")
                .list(|t, r| Box::pin(t.read(r))),
            Path::<Toy>::new("things/{name}")
                .summary("a thing")
                .field(Field::int("size", "how big").required())
                .read(|t, r| Box::pin(t.read(r)))
                .create(|t, r| Box::pin(t.create(r)))
                .update(|t, r| Box::pin(t.update(r)))
                .exists(|t, r| Box::pin(t.exists(r))),
        ])
        .unwrap()
    }

    async fn request(op: Operation, route: &Route, body: serde_json::Value) -> Request {
        let dir = tempfile::tempdir().unwrap();
        let storage: crate::storage::Storage = Arc::new(
            crate::storage::SqliteBackend::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let store = crate::barrier::SealedStorage::new(
            storage,
            Arc::new(crate::barrier::Barrier::new(
                crate::barrier::Keyring::generate().unwrap(),
            )),
        );
        Request {
            operation: op,
            path: "toy/things/a".into(),
            params: route.params.clone(),
            data: body.as_object().cloned().unwrap_or_default(),
            mount: Arc::new(Mount {
                path: "toy/".into(),
                kind: "toy".into(),
                uuid: "u".into(),
                accessor: "toy_1".into(),
                default_ttl: std::time::Duration::from_secs(60),
                max_ttl: std::time::Duration::from_secs(60),
                storage: StorageView::for_mount(store, "u"),
                options: Default::default(),
            }),
            caller: Caller::Root,
            remote: std::net::IpAddr::from([127, 0, 0, 1]),
            peer_certificates: None,
        }
    }

    #[tokio::test]
    async fn the_existence_check_tells_create_from_update() {
        let (table, toy) = (table(), Toy::default());
        let route = table.find("/things/a/").unwrap();
        let req = request(Operation::Update, &route, json!({ "size": 1 })).await;
        assert_eq!(
            table.exists(&toy, route.index, &req).await.unwrap(),
            Some(false)
        );
        toy.exists.store(true, Ordering::SeqCst);
        assert_eq!(
            table.exists(&toy, route.index, &req).await.unwrap(),
            Some(true)
        );
        let create = request(Operation::Create, &route, json!({ "size": 1 })).await;
        let reply = table.call(&toy, route.index, &create).await.unwrap();
        assert_eq!(reply.status(), axum::http::StatusCode::OK);
        let update = table.call(&toy, route.index, &req).await.unwrap();
        assert_eq!(update.status(), axum::http::StatusCode::NO_CONTENT);
        // A path without a check has none to run.
        let list = table.find("things").unwrap();
        assert_eq!(table.exists(&toy, list.index, &req).await.unwrap(), None);
    }

    #[tokio::test]
    async fn fields_are_checked_before_the_handler() {
        let (table, toy) = (table(), Toy::default());
        let route = table.find("things/a").unwrap();
        let req = request(Operation::Update, &route, json!({ "size": "big" })).await;
        let e = table.call(&toy, route.index, &req).await.unwrap_err();
        assert_eq!(e.field_name(), Some("size"), "{e}");
        let req = request(Operation::Update, &route, json!({})).await;
        let e = table.call(&toy, route.index, &req).await.unwrap_err();
        assert!(e.to_string().contains("size is required"), "{e}");
    }

    #[test]
    fn what_a_path_serves_decides_405() {
        let table = table();
        let things = &table.paths()[table.find("things/a").unwrap().index];
        assert_eq!(things.serving(Operation::Read), Some(Operation::Read));
        assert_eq!(things.serving(Operation::Delete), None);
        let list = &table.paths()[table.find("things").unwrap().index];
        // A path that only lists takes no write.
        assert_eq!(list.serving(Operation::Update), None);
        assert!(table.find("things/a/b").is_none());
    }

    #[test]
    fn a_table_refuses_an_operation_twice_or_a_pattern_twice() {
        let twice: Result<Table<Toy>, _> = Table::new(vec![
            Path::<Toy>::new("x")
                .read(|t, r| Box::pin(t.read(r)))
                .read(|t, r| Box::pin(t.read(r))),
        ]);
        assert!(twice.is_err());
        let same: Result<Table<Toy>, _> = Table::new(vec![
            Path::<Toy>::new("x").read(|t, r| Box::pin(t.read(r))),
            Path::<Toy>::new("x").update(|t, r| Box::pin(t.update(r))),
        ]);
        assert!(same.is_err());
        let none: Result<Table<Toy>, _> = Table::new(vec![Path::<Toy>::new("x")]);
        assert!(none.is_err());
    }
}

//! The write verbs without HTTP: create, update (GuaranteedUpdate loop), delete with finalizers and propagation.
//! The HTTP handlers and the built-in controllers both go through these.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::admission::{Admission, AdmissionRequest, Operation};
use crate::faults::Faults;
use crate::managed::{Writer, record_update};
use crate::objects::{
    self, Sub, check_type, finalizers, is_deleting, meta_mut, meta_str, prepare_create,
    prepare_update,
};
use crate::resources::{Registry, ResourceInfo};
use crate::status::{ApiError, ApiResult};
use crate::store::{CommitError, Committed, Precondition, Store, Write};
use crate::stored::{ObjKey, Prepared, StoredObject};
use crate::{crd, limits, validation};
use clock::{Clock, Entropy, format_k8s};

/// Shared server state.
pub struct State {
    pub store: Arc<Store>,
    pub registry: Registry,
    pub clock: Clock,
    /// Draws uids and generated names.
    pub entropy: Entropy,
    pub faults: Faults,
    pub admission: Admission,
    pub bookmark_interval: Duration,
    /// Begun when the server stops: open watches end, new requests are refused.
    pub shutdown: crate::shutdown::Shutdown,
    /// Open watches per client, bounded.
    pub watches: Arc<crate::limits::WatchSlots>,
    /// Started when a CRD's deletion is committed: `controllers::crd_cleanup`, handed in by `Server::start` so
    /// that these operations need not import the controllers that write through them.
    pub crd_cleanup: fn(Arc<State>, String) -> futures::future::BoxFuture<'static, ()>,
}

/// Who writes and how.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub manager: String,
    pub version: String,
    /// The part of the object written (main resource, status, a Namespace's finalize).
    pub sub: Sub,
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being pruned.
    pub strict: bool,
}

impl WriteCtx {
    pub fn internal(version: &str) -> Self {
        WriteCtx {
            manager: "kube-apiserver".into(),
            version: version.into(),
            sub: Sub::Main,
            dry_run: false,
            strict: false,
        }
    }

    fn subresource(&self) -> &'static str {
        match self.sub {
            Sub::Main => "",
            Sub::Status => "status",
            Sub::Finalize => "finalize",
        }
    }
}

/// Whether managedFields still need to be recorded for a write (server-side apply records its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Update,
    AlreadyRecorded,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub rv: Option<String>,
    pub dry_run: bool,
}

const MAX_UPDATE_ATTEMPTS: usize = 64;

impl State {
    pub fn now(&self) -> String {
        format_k8s(self.clock.now_chrono())
    }

    pub fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> ObjKey {
        let namespace = if info.namespaced {
            ns.unwrap_or("").to_string()
        } else {
            String::new()
        };
        ObjKey {
            resource: info.key.clone(),
            namespace,
            name: name.to_string(),
        }
    }

    fn admit(
        &self,
        info: &ResourceInfo,
        op: Operation,
        ctx: &WriteCtx,
        old: Option<&Value>,
        new: &mut Value,
    ) -> ApiResult<()> {
        if self.admission.is_empty() {
            return Ok(());
        }
        let snapshot = new.clone();
        let req = AdmissionRequest {
            operation: op,
            group: &info.group,
            version: &ctx.version,
            kind: &info.kind,
            resource: &info.plural,
            subresource: ctx.subresource(),
            namespace: meta_str(&snapshot, "namespace").unwrap_or(""),
            name: objects::name_of(&snapshot),
            object: Some(&snapshot),
            old_object: old,
            dry_run: ctx.dry_run,
        };
        let mut mutated = snapshot.clone();
        self.admission.run_mutating(&req, &mut mutated)?;
        self.admission.run_validating(&AdmissionRequest {
            object: Some(&mutated),
            ..req
        })?;
        *new = mutated;
        Ok(())
    }

    /// Refuses writes into a missing or terminating namespace, as the NamespaceLifecycle admission plugin does.
    fn check_namespace(&self, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<()> {
        let ns_info = self
            .registry
            .get("", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces not registered"))?;
        match self.store.get(&State::key(&ns_info, None, ns)) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some((_, obj)) if obj.meta.deleting => Err(ApiError::forbidden(
                &info.group,
                &info.plural,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    fn check_crd_not_terminating(&self, info: &ResourceInfo) -> ApiResult<()> {
        if !info.custom {
            return Ok(());
        }
        let Some(crd_info) = self
            .registry
            .get("apiextensions.k8s.io", "customresourcedefinitions")
        else {
            return Ok(());
        };
        let crd_name = format!("{}.{}", info.plural, info.group);
        match self.store.get(&State::key(&crd_info, None, &crd_name)) {
            Some((_, crd)) if crd.meta.deleting => Err(ApiError::method_not_allowed(&format!(
                "create not allowed while custom resource definition is terminating; {crd_name}"
            ))),
            _ => Ok(()),
        }
    }
}

fn schema_of<'a>(info: &'a ResourceInfo, version: &str) -> Option<&'a Value> {
    info.schema(version)
        .or_else(|| info.schema(&info.versions[0]))
}

fn map_commit_error(info: &ResourceInfo, name: &str, e: CommitError) -> ApiError {
    match e {
        CommitError::Exists => ApiError::already_exists(&info.group, &info.plural, name),
        CommitError::NotFound => ApiError::not_found(&info.group, &info.plural, name),
        CommitError::Stale => ApiError::stale(&info.group, &info.plural, name),
    }
}

fn not_durable() -> ApiError {
    ApiError::internal("the write could not be persisted to the data directory")
}

async fn finish(
    st: &Arc<State>,
    info: &ResourceInfo,
    mut committed: Committed,
    removed: bool,
) -> ApiResult<Arc<StoredObject>> {
    if !committed.wait_durable().await {
        return Err(not_durable());
    }
    crd_hooks(st, info, &committed.object, removed).await;
    Ok(committed.object)
}

/// Creates an object. `record` is `AlreadyRecorded` when server-side apply built the managedFields.
pub async fn create(
    st: &Arc<State>,
    info: &Arc<ResourceInfo>,
    ns: Option<&str>,
    mut obj: Value,
    ctx: &WriteCtx,
    record: Record,
) -> ApiResult<Arc<StoredObject>> {
    check_type(info, &ctx.version, &mut obj)?;
    objects::convert_in(info, &mut obj)?;
    let namespace = if info.namespaced { ns } else { None };
    if info.namespaced && namespace.is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "the server could not find the requested resource (namespace required)",
        ));
    }
    let now = st.now();
    prepare_create(info, namespace, &mut obj, &now, &st.entropy)?;
    let name = objects::name_of(&obj).to_string();
    if let Some(ns) = namespace {
        st.check_namespace(info, ns, &name)?;
    }
    st.check_crd_not_terminating(info)?;
    if info.kind == "CustomResourceDefinition" {
        let causes = crd::validate(&obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
        }
        meta_mut(&mut obj).insert("finalizers".into(), json!([crd::CLEANUP_FINALIZER]));
    }
    validation::validate(info, &ctx.version, None, &mut obj, ctx.strict)?;
    st.admit(info, Operation::Create, ctx, None, &mut obj)?;
    if record == Record::Update {
        let w = Writer {
            manager: &ctx.manager,
            api_version: &info.api_version(&ctx.version),
            subresource: "",
            time: &now,
        };
        record_update(None, &mut obj, schema_of(info, &ctx.version), &w);
    }
    if ctx.dry_run {
        limits::check_stored(&obj, limits::json_len(&obj))?;
        return Ok(Arc::new(StoredObject::detached(&info.key, &obj)));
    }
    let key = State::key(info, namespace, &name);
    let prepared = Prepared::new(&info.key, &obj);
    limits::check_stored(&obj, prepared.stored_len())?;
    let committed = st
        .store
        .commit(&key, Precondition::Absent, Write::Put(prepared))
        .map_err(|e| map_commit_error(info, &name, e))?;
    finish(st, info, committed, false).await
}

/// The GuaranteedUpdate loop: read, let `mutate` compute the desired object, apply update rules, commit if the
/// object did not change meanwhile (else retry). `precondition` pins a client-given resourceVersion.
pub async fn update(
    st: &Arc<State>,
    info: &Arc<ResourceInfo>,
    key: &ObjKey,
    precondition: Option<u64>,
    ctx: &WriteCtx,
    record: Record,
    mutate: &(dyn Fn(&Value) -> ApiResult<Value> + Send + Sync),
) -> ApiResult<Arc<StoredObject>> {
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let (rv, stored) = st
            .store
            .get(key)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, &key.name))?;
        if precondition.is_some_and(|want| want != rv) {
            return Err(ApiError::stale(&info.group, &info.plural, &key.name));
        }
        let current = stored.value();
        let mut new = mutate(&current)?;
        check_type(info, &ctx.version, &mut new)?;
        objects::convert_in(info, &mut new)?;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        prepare_update(info, &current, &mut new, ctx.sub)?;
        if info.kind == "CustomResourceDefinition" {
            let causes = crd::validate(&new);
            if !causes.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    &key.name,
                    causes,
                ));
            }
        }
        validation::validate(info, &ctx.version, Some(&current), &mut new, ctx.strict)?;
        st.admit(info, Operation::Update, ctx, Some(&current), &mut new)?;
        if record == Record::Update {
            let now = st.now();
            let av = info.api_version(&ctx.version);
            let w = Writer {
                manager: &ctx.manager,
                api_version: &av,
                subresource: ctx.subresource(),
                time: &now,
            };
            record_update(Some(&current), &mut new, schema_of(info, &ctx.version), &w);
        }
        if ctx.dry_run {
            limits::check_stored(&new, limits::json_len(&new))?;
            return Ok(Arc::new(StoredObject::detached(&info.key, &new)));
        }
        let removed = objects::ready_to_remove(info, &new);
        let write = if removed {
            Write::Delete
        } else {
            let prepared = Prepared::new(&info.key, &new);
            limits::check_stored(&new, prepared.stored_len())?;
            // A no-op write (same bytes as stored) changes nothing, not even the resourceVersion.
            if prepared.serialises(&stored) {
                return Ok(stored);
            }
            Write::Put(prepared)
        };
        match st.store.commit(key, Precondition::Rv(rv), write) {
            Ok(committed) => return finish(st, info, committed, removed).await,
            Err(CommitError::Stale) if precondition.is_none() => continue,
            Err(e) => return Err(map_commit_error(info, &key.name, e)),
        }
    }
    Err(ApiError::new(
        409,
        "Conflict",
        format!("too many concurrent updates of {}", key.name),
    ))
}

/// The server's own edit of an object (manager `kube-apiserver`, the resource's storage version, no
/// precondition): `edit` changes a copy of the current object, and a stale read just retries inside update().
pub async fn edit_internally(
    st: &Arc<State>,
    info: &Arc<ResourceInfo>,
    key: &ObjKey,
    sub: Sub,
    edit: &(dyn Fn(&mut Value) + Send + Sync),
) -> ApiResult<Arc<StoredObject>> {
    let ctx = WriteCtx {
        sub,
        ..WriteCtx::internal(&info.versions[0])
    };
    let mutate = |cur: &Value| {
        let mut next = cur.clone();
        edit(&mut next);
        Ok(next)
    };
    update(st, info, key, None, &ctx, Record::Update, &mutate).await
}

/// Parses a client-given resourceVersion precondition.
pub fn parse_rv(info: &ResourceInfo, name: &str, rv: Option<&str>) -> ApiResult<Option<u64>> {
    match rv {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::invalid(
                &info.group,
                &info.kind,
                name,
                vec![crate::status::Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    format!("Invalid value: \"{s}\": must be a decimal resourceVersion"),
                )],
            )
        }),
    }
}

/// Deletes an object: immediately when nothing holds it, else sets deletionTimestamp and leaves it to the
/// finalizers' owners. Returns the last state and whether the object is gone.
pub async fn delete(
    st: &Arc<State>,
    info: &Arc<ResourceInfo>,
    key: &ObjKey,
    opts: &DeleteOpts,
) -> ApiResult<(Arc<StoredObject>, bool)> {
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let (rv, stored) = st
            .store
            .get(key)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, &key.name))?;
        let current = stored.value();
        check_delete_preconditions(info, key, rv, &current, opts)?;
        admit_delete(st, info, key, &current, opts)?;
        let Some(write) = deletion_write(info, &current, opts, st.clock.now_chrono()) else {
            return Ok((stored, false));
        };
        let removed = matches!(write, Write::Delete);
        if opts.dry_run {
            return Ok((stored, removed));
        }
        match st.store.commit(key, Precondition::Rv(rv), write) {
            Ok(mut committed) => {
                if !committed.wait_durable().await {
                    return Err(not_durable());
                }
                crd_hooks(st, info, &committed.object, removed).await;
                if !removed && info.kind == "CustomResourceDefinition" {
                    tokio::spawn((st.crd_cleanup)(st.clone(), key.name.clone()));
                }
                return Ok((committed.object, removed));
            }
            Err(CommitError::Stale) => continue,
            Err(e) => return Err(map_commit_error(info, &key.name, e)),
        }
    }
    Err(ApiError::new(
        409,
        "Conflict",
        format!("too many concurrent updates of {}", key.name),
    ))
}

fn check_delete_preconditions(
    info: &ResourceInfo,
    key: &ObjKey,
    rv: u64,
    current: &Value,
    opts: &DeleteOpts,
) -> ApiResult<()> {
    let failed = |why: String| {
        Err(ApiError::conflict(
            &info.group,
            &info.plural,
            &key.name,
            &why,
        ))
    };
    let uid = meta_str(current, "uid").unwrap_or("");
    if let Some(want) = &opts.uid
        && want != uid
    {
        return failed(format!(
            "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
        ));
    }
    if let Some(want) = &opts.rv
        && *want != rv.to_string()
    {
        return failed(format!(
            "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
        ));
    }
    Ok(())
}

fn admit_delete(
    st: &State,
    info: &ResourceInfo,
    key: &ObjKey,
    current: &Value,
    opts: &DeleteOpts,
) -> ApiResult<()> {
    if st.admission.is_empty() {
        return Ok(());
    }
    st.admission.run_validating(&AdmissionRequest {
        operation: Operation::Delete,
        group: &info.group,
        version: &info.versions[0],
        kind: &info.kind,
        resource: &info.plural,
        subresource: "",
        namespace: &key.namespace,
        name: &key.name,
        object: None,
        old_object: Some(current),
        dry_run: opts.dry_run,
    })
}

/// What a delete request writes: removal when nothing holds the object, else the object marked as being
/// deleted (with the propagation policy's finalizer). None when it is already being deleted as asked.
fn deletion_write(
    info: &ResourceInfo,
    current: &Value,
    opts: &DeleteOpts,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Write> {
    let mut new = current.clone();
    let mut held = finalizers(&new);
    let policy_finalizer = match opts.propagation.as_deref() {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    };
    if let Some(f) = policy_finalizer
        && !held.iter().any(|h| h == f)
        && !is_deleting(current)
    {
        held.push(f.to_string());
        meta_mut(&mut new).insert("finalizers".into(), json!(held));
    }
    let is_namespace = info.kind == "Namespace" && info.group.is_empty();
    if held.is_empty() && !is_namespace {
        return Some(Write::Delete);
    }
    if is_deleting(current) && new == *current {
        return objects::ready_to_remove(info, current).then_some(Write::Delete);
    }
    if !is_deleting(&new) {
        objects::mark_deleting(info, &mut new, now);
    }
    Some(if objects::ready_to_remove(info, &new) {
        Write::Delete
    } else {
        Write::Put(Prepared::new(&info.key, &new))
    })
}

/// Keeps the registry in step with CRD writes: established CRDs are served, removed ones are not.
async fn crd_hooks(st: &Arc<State>, info: &ResourceInfo, stored: &StoredObject, removed: bool) {
    if info.kind != "CustomResourceDefinition" || info.group != "apiextensions.k8s.io" {
        return;
    }
    let obj = &stored.value();
    let served = crd::resource_info(obj);
    if removed {
        st.registry.remove(&served.group, &served.plural);
        return;
    }
    st.registry.insert(served);
    let established = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
    if !established {
        let name = objects::name_of(obj).to_string();
        let key = State::key(info, None, &name);
        let status = crd::established_status(obj, &st.now());
        let info = Arc::new(info.clone());
        let set_status = |next: &mut Value| next["status"] = status.clone();
        let _ = Box::pin(edit_internally(st, &info, &key, Sub::Status, &set_status)).await;
    }
}

/// Re-registers every stored CRD (after a restart from disk).
pub fn register_stored_crds(st: &State) {
    let Some(crd_info) = st
        .registry
        .get("apiextensions.k8s.io", "customresourcedefinitions")
    else {
        return;
    };
    for key in st.store.keys(&crd_info.key, None) {
        if let Some((_, obj)) = st.store.get(&key) {
            st.registry.insert(crd::resource_info(&obj.value()));
        }
    }
}

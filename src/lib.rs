//! Node-API binding: converts JS values and forwards to `iron_runtime`. No policy lives here.

mod agent_runtime;
mod errors;
mod router;

pub use agent_runtime::NativeAgentRuntime;
pub use router::NativeRouter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns to the OS what this thread has freed. Starting a router compiles its PII scanner on the
/// JS thread, and the compiler's scratch memory, once freed, would otherwise stay resident: mimalloc
/// keeps a thread's free pages for that thread, and the JS thread allocates little afterwards.
pub(crate) fn release_freed_memory() {
    // SAFETY: plain FFI call; it only touches the calling thread's heap and the shared segments.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Size the shared tokio runtime once: two workers are plenty for a local proxy and keep the host
/// process from gaining a thread per core.
#[napi_derive::module_init]
fn init() {
    // IRON_CAGE_WORKER_THREADS overrides the default of two workers, and of two connection
    // threads (IRON_CAGE_CONN_THREADS=0: none); read here once, on the JS thread.
    let (workers, conn_threads) = iron_runtime::conn_workers::counts_from_env();
    iron_runtime::conn_workers::configure(conn_threads);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("iron-cage")
        .enable_all()
        .build();
    if let Ok(rt) = rt {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

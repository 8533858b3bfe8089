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
    // IRON_CAGE_WORKER_THREADS overrides the default of two workers.
    let workers = std::env::var("IRON_CAGE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("iron-cage")
        .enable_all()
        .build();
    if let Ok(rt) = rt {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

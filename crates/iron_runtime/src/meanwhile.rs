//! Bookkeeping done while the provider works rather than before it gets the request.

/// Work that runs once: when asked, or else when dropped.
pub(crate) struct Deferred<M: FnOnce()>(pub(crate) Option<M>);

impl<M: FnOnce()> Deferred<M> {
    fn run(&mut self) {
        if let Some(m) = self.0.take() {
            m();
        }
    }
}

impl<M: FnOnce()> Drop for Deferred<M> {
    fn drop(&mut self) {
        self.run();
    }
}

/// Runs `call` until it first waits (on a pooled connection: its request written, the answer not
/// yet back), then `meanwhile`, then the rest of `call`. Bookkeeping that the call does not depend
/// on runs while the provider works instead of before it gets the request.
pub(crate) async fn while_waiting<F: std::future::Future, M: FnOnce()>(
    call: F,
    meanwhile: &mut Deferred<M>,
) -> F::Output {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        let polled = call.as_mut().poll(cx);
        meanwhile.run();
        polled
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[tokio::test]
    async fn meanwhile_runs_once_after_the_call_first_waits_and_before_it_ends() {
        let log = RefCell::new(Vec::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let call = async {
            log.borrow_mut().push("request written");
            let _ = rx.await;
            log.borrow_mut().push("answer read");
        };
        let mut report = Deferred(Some(|| log.borrow_mut().push("reported")));
        let answer = async {
            tokio::task::yield_now().await;
            let _ = tx.send(());
        };
        tokio::join!(while_waiting(call, &mut report), answer);
        drop(report);
        assert_eq!(
            *log.borrow(),
            vec!["request written", "reported", "answer read"]
        );
    }

    #[test]
    fn deferred_work_runs_when_dropped_unasked() {
        let ran = RefCell::new(0);
        drop(Deferred(Some(|| *ran.borrow_mut() += 1)));
        assert_eq!(*ran.borrow(), 1);
    }
}

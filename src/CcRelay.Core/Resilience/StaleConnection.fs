namespace CcRelay.Core

open System

/// How an upstream request failed before any answer (what the host reads off the exception).
[<RequireQualifiedAccess>]
type SendFailure =
    /// The upstream closed the connection before the first byte of its answer (`HttpRequestError.ResponseEnded`).
    | ResponseEnded
    /// The connection was reset or aborted (a TCP RST) while the request was sent or its answer awaited.
    | ConnectionReset
    /// Anything else: a refused connection, TLS, DNS, an invalid answer, a timeout.
    | Other

/// What the host saw of a request that got no answer.
type SendFacts = {
    Failure: SendFailure
    /// The connection had carried an earlier request (it came from the pool); false when new, or unknown (HTTP/2,
    /// whose frames are written by the connection's own loop, off the request's flow).
    Reused: bool
    /// Some of the answer may have been read on that connection for this request (the host cannot tell: true).
    AnswerStarted: bool
    /// The request is already the one resend.
    Resent: bool
}

/// A POST sent into a pooled keep-alive connection that the upstream is closing (its idle timeout ran out as the
/// request left) fails before any answer: SocketsHttpHandler retries such a request on its own only when it had
/// not begun sending a body, so a `/v1/messages` POST is never retried there. Without a resend the failover would
/// spend an attempt on it, count a connection failure against the provider and its key, and perhaps trip a breaker,
/// though the upstream never saw the request.
[<RequireQualifiedAccess>]
module StaleConnection =

    /// Whether to send the request once more, on a new connection, with the same key: the failure came from a reused
    /// connection closed or reset before a byte of the answer (so the upstream did not answer it: an upstream closes
    /// an idle connection, not one whose request it is processing), and it has not been resent yet. The attempt's
    /// outcome is the resend's; the first try counts for nothing.
    let resend (facts: SendFacts) : bool =
        not facts.Resent
        && facts.Reused
        && not facts.AnswerStarted
        && (facts.Failure = SendFailure.ResponseEnded
            || facts.Failure = SendFailure.ConnectionReset)

    /// How long a pooled upstream connection may stay idle before the relay closes it: below the idle timeouts of the
    /// load balancers in front of most hosted providers (AWS ALB 60 s, nginx's default keep-alive 75 s, Google's
    /// front ends and Cloudflare longer), so the relay closes first. Local servers close sooner (uvicorn — vLLM,
    /// LiteLLM — and Node 5 s, gunicorn 2 s); for them the resend above covers the race.
    let idleTimeout: TimeSpan = TimeSpan.FromSeconds 55.0

namespace CcRelay.Core

/// What one upstream attempt says about the provider's health.
[<RequireQualifiedAccess>]
type AttemptOutcome =
    /// The upstream answered the request (2xx/3xx).
    | Success
    /// The upstream is unwell: 5xx, 529, 429, 408, a connection error or a timeout. Worth another provider.
    | Failure of Reason: string
    /// The upstream refused this request for its own reasons (other 4xx): says nothing about its health.
    | Rejected of Status: int
    /// The client went away first: counts neither way.
    | Abandoned

/// Classification of upstream answers.
[<RequireQualifiedAccess>]
module Outcome =

    /// Classifies an upstream status code.
    let ofStatus (status: int) : AttemptOutcome =
        match status with
        | s when s >= 200 && s < 400 -> AttemptOutcome.Success
        | 408
        | 429 -> AttemptOutcome.Failure $"status %d{status}"
        | s when s >= 500 -> AttemptOutcome.Failure $"status %d{status}"
        | s -> AttemptOutcome.Rejected s

    /// Whether a failed attempt may be retried elsewhere (only while no byte reached the client).
    let isRetryable (outcome: AttemptOutcome) : bool =
        match outcome with
        | AttemptOutcome.Failure _ -> true
        | AttemptOutcome.Success
        | AttemptOutcome.Rejected _
        | AttemptOutcome.Abandoned -> false

/// What happened to a request, end to end: the one value the request line, the metrics and the trace report
/// (`result`), with the error type the client saw and, where the relay decides it, the status.
[<RequireQualifiedAccess>]
type RequestResult =
    /// Answered (the status is the upstream's).
    | Ok
    /// An upstream's error answer passed through (`upstream_429`); its error type from its body when it had one.
    | UpstreamStatus of Status: int * ErrorType: string option
    /// A relayed stream carried an `error` event (`upstream_error_event`), of this error type.
    | UpstreamErrorEvent of ErrorType: string
    /// A relayed stream broke after its first bytes (`stream_error`).
    | StreamBroken
    /// A relayed answer ran into the whole-request time limit (`timeout_error`).
    | TimedOut
    /// A relayed JSON answer's body could not be read to its end (`upstream_body_failed`).
    | BodyFailed
    /// The client went away (`client_aborted`, 499).
    | ClientAborted
    /// The relay answered with its own error envelope (its `error.type` is the result).
    | Refused of ErrorType: ErrorType * Status: int
    /// The relay failed (`internal_error`, 500).
    | InternalError
    /// An answer-side plugin failed under `on_error: fail` (`plugin_error`): the client got the relay's
    /// `api_error` (a 500, or an SSE `error` event mid-stream) instead of the upstream's answer.
    | PluginFailed

/// Names of `RequestResult`s.
[<RequireQualifiedAccess>]
module RequestResult =

    /// The `result` field of the request line and the `result` label of the metrics.
    let wireName (result: RequestResult) : string =
        match result with
        | RequestResult.Ok -> "ok"
        | RequestResult.UpstreamStatus(status, _) -> "upstream_" + string status
        | RequestResult.UpstreamErrorEvent _ -> "upstream_error_event"
        | RequestResult.StreamBroken -> "stream_error"
        | RequestResult.TimedOut -> "timeout_error"
        | RequestResult.BodyFailed -> "upstream_body_failed"
        | RequestResult.ClientAborted -> "client_aborted"
        | RequestResult.Refused(errorType, _) -> ErrorEnvelope.wireName errorType
        | RequestResult.InternalError -> "internal_error"
        | RequestResult.PluginFailed -> "plugin_error"

    /// The Anthropic error type the client saw, when it saw one.
    let errorType (result: RequestResult) : string option =
        match result with
        | RequestResult.Ok
        | RequestResult.ClientAborted
        | RequestResult.BodyFailed
        | RequestResult.InternalError -> None
        | RequestResult.UpstreamStatus(_, errorType) -> Some(defaultArg errorType "upstream_error")
        | RequestResult.UpstreamErrorEvent errorType -> Some errorType
        | RequestResult.StreamBroken
        | RequestResult.PluginFailed -> Some "api_error"
        | RequestResult.TimedOut -> Some "timeout_error"
        | RequestResult.Refused(errorType, _) -> Some(ErrorEnvelope.wireName errorType)

    /// The status the relay itself decides for this result (None: the upstream's status stands).
    let status (result: RequestResult) : int option =
        match result with
        | RequestResult.ClientAborted -> Some 499
        | RequestResult.InternalError -> Some 500
        | RequestResult.Refused(_, status) -> Some status
        | RequestResult.Ok
        | RequestResult.UpstreamStatus _
        | RequestResult.UpstreamErrorEvent _
        | RequestResult.StreamBroken
        | RequestResult.PluginFailed
        | RequestResult.TimedOut
        | RequestResult.BodyFailed -> None

/// The C#-facing surface of `RequestResult`: the request line, the metrics and the trace read these.
type RequestResult with

    /// An upstream's error answer passed through, its error type unknown.
    static member OfUpstreamStatus(status: int) : RequestResult =
        RequestResult.UpstreamStatus(status, None)

    /// The `result` field and label (`RequestResult.wireName`).
    member this.WireName: string = RequestResult.wireName this

    /// The Anthropic error type the client saw, or null (`RequestResult.errorType`).
    member this.ClientErrorType: string | null =
        match RequestResult.errorType this with
        | Some errorType -> errorType
        | None -> null

    /// The status the relay decides, or null when the upstream's stands (`RequestResult.status`).
    member this.RelayStatus: System.Nullable<int> =
        match RequestResult.status this with
        | Some status -> System.Nullable status
        | None -> System.Nullable()

/// An answer the relay makes itself for an admitted attempt, without calling the upstream it planned. It says
/// nothing about the provider: no breaker or key-pool outcome is recorded for it (`Relay.record`), it is not an
/// upstream attempt in the metrics, and the request line, metrics and ledger say it was answered locally.
[<RequireQualifiedAccess>]
type LocalAnswer =
    /// The attempt's pipeline failed (`on_error: fail`): the failing step's Anthropic error.
    | PipelineFailed
    /// A translated provider refuses what it would have to leave out (`on_dropped: refuse`): a 400 naming it.
    | DroppedRefused
    /// A translated provider's `count_tokens`, counted by the relay.
    | CountTokens

/// Which answers the relay makes itself, and what they mean for the request.
[<RequireQualifiedAccess>]
module LocalAnswer =

    /// The `local` field of the request line, the `reason` label of `ccrelay_local_answers_total`.
    let wireName (answer: LocalAnswer) : string =
        match answer with
        | LocalAnswer.PipelineFailed -> "pipeline_error"
        | LocalAnswer.DroppedRefused -> "dropped_refused"
        | LocalAnswer.CountTokens -> "count_tokens"

    /// The local answer an attempt's final plan makes, if it makes one (`Dialect.localAnswer`):
    /// `pipelineFailed` says the attempt's pipeline failed (its plan is `Pipeline.failedPlan`).
    let ofPlan (pipelineFailed: bool) (plan: UpstreamPlan) : LocalAnswer option =
        match Dialect.localAnswer plan with
        | None -> None
        | Some _ when pipelineFailed -> Some LocalAnswer.PipelineFailed
        | Some _ when Dialect.refusedDropped plan -> Some LocalAnswer.DroppedRefused
        | Some _ -> Some LocalAnswer.CountTokens

    /// The request's result when the relay answered it locally with `status`: `ok` below 400, else the relay's
    /// own error (`invalid_request_error` for a 4xx, `api_error` for a 5xx), never an `upstream_…` result.
    let result (status: int) : RequestResult =
        if status < 400 then
            RequestResult.Ok
        elif status >= 500 then
            RequestResult.Refused(ErrorType.Api, status)
        else
            RequestResult.Refused(ErrorType.InvalidRequest, status)

/// The C#-facing surface of `LocalAnswer`.
type LocalAnswer with

    /// `LocalAnswer.wireName`.
    member this.WireName: string = LocalAnswer.wireName this

    /// `LocalAnswer.ofPlan`: whether the attempt's final plan makes a local answer, and which.
    static member TryOfPlan
        (pipelineFailed: bool, plan: UpstreamPlan, [<System.Runtime.InteropServices.Out>] answer: byref<LocalAnswer>)
        : bool =
        match LocalAnswer.ofPlan pipelineFailed plan with
        | Some local ->
            answer <- local
            true
        | None -> false

    /// `LocalAnswer.result`: the request's result when the relay answered it locally with `status`.
    static member Result(status: int) : RequestResult = LocalAnswer.result status

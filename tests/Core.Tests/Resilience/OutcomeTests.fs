module CcRelay.Core.Tests.OutcomeTests

open Xunit
open CcRelay.Core

[<Theory>]
[<InlineData(200)>]
[<InlineData(201)>]
[<InlineData(204)>]
[<InlineData(299)>]
[<InlineData(301)>]
[<InlineData(304)>]
[<InlineData(399)>]
let ``2xx and 3xx are a success`` (status: int) =
    Assert.Equal(AttemptOutcome.Success, Outcome.ofStatus status)

[<Theory>]
[<InlineData(408)>]
[<InlineData(429)>]
[<InlineData(500)>]
[<InlineData(502)>]
[<InlineData(503)>]
[<InlineData(504)>]
[<InlineData(529)>]
[<InlineData(599)>]
let ``408, 429 and 5xx are a failure of the upstream`` (status: int) =
    Assert.Equal(AttemptOutcome.Failure $"status %d{status}", Outcome.ofStatus status)

[<Theory>]
[<InlineData(400)>]
[<InlineData(401)>]
[<InlineData(403)>]
[<InlineData(404)>]
[<InlineData(405)>]
[<InlineData(409)>]
[<InlineData(413)>]
[<InlineData(422)>]
[<InlineData(499)>]
[<InlineData(100)>]
[<InlineData(101)>]
[<InlineData(199)>]
let ``other statuses are a rejection of this request`` (status: int) =
    Assert.Equal(AttemptOutcome.Rejected status, Outcome.ofStatus status)

[<Fact>]
let ``every status from 100 to 599 falls in exactly the documented class`` () =
    for status in 100..599 do
        let expected =
            if status >= 200 && status < 400 then
                "success"
            elif status = 408 || status = 429 || status >= 500 then
                "failure"
            else
                "rejected"

        let actual =
            match Outcome.ofStatus status with
            | AttemptOutcome.Success -> "success"
            | AttemptOutcome.Failure _ -> "failure"
            | AttemptOutcome.Rejected s when s = status -> "rejected"
            | other -> $"%A{other}"

        Assert.True((expected = actual), $"status %d{status}: expected %s{expected}, got %s{actual}")

[<Fact>]
let ``only failures are retryable`` () =
    Assert.True(Outcome.isRetryable (AttemptOutcome.Failure "status 503"))
    Assert.True(Outcome.isRetryable (Outcome.ofStatus 429))
    Assert.False(Outcome.isRetryable AttemptOutcome.Success)
    Assert.False(Outcome.isRetryable (AttemptOutcome.Rejected 400))
    Assert.False(Outcome.isRetryable AttemptOutcome.Abandoned)

[<Fact>]
let ``a request's result names itself once, for the line, the metrics and the trace`` () =
    let cases = [
        RequestResult.Ok, "ok", None, None
        RequestResult.UpstreamStatus(429, Some "rate_limit_error"), "upstream_429", Some "rate_limit_error", None
        RequestResult.UpstreamStatus(500, None), "upstream_500", Some "upstream_error", None
        RequestResult.UpstreamErrorEvent "overloaded_error", "upstream_error_event", Some "overloaded_error", None
        RequestResult.StreamBroken, "stream_error", Some "api_error", None
        RequestResult.TimedOut, "timeout_error", Some "timeout_error", None
        RequestResult.BodyFailed, "upstream_body_failed", None, None
        RequestResult.ClientAborted, "client_aborted", None, Some 499
        RequestResult.Refused(ErrorType.Authentication, 401),
        "authentication_error",
        Some "authentication_error",
        Some 401
        RequestResult.InternalError, "internal_error", None, Some 500
    ]

    for result, wire, errorType, status in cases do
        Assert.Equal(wire, RequestResult.wireName result)
        Assert.Equal(errorType, RequestResult.errorType result)
        Assert.Equal(status, RequestResult.status result)

let private factsOf (body: string) : RequestFacts =
    match RequestFacts.inspect (System.ReadOnlySpan(System.Text.Encoding.UTF8.GetBytes body)) with
    | Ok facts -> facts
    | Error e -> failwith (RequestFacts.describe e)

[<Fact>]
let ``the relay's own answers are told from the plan: a failed pipeline, a translated count_tokens; an upstream call is none``
    ()
    =
    let facts =
        factsOf """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"""

    let direct =
        Config.defaultProvider "a" ProviderType.AnthropicCompatible (System.Uri "https://a.example")

    let sent = Dialect.plan direct ValueNone facts "/v1/messages" [] []
    Assert.Equal(None, LocalAnswer.ofPlan false sent)

    let failed =
        Pipeline.failedPlan sent [] {
            Step = "tool_choice"
            Reason = "no such tool"
            Kind = FailedStep.Transformer
        }

    Assert.Equal(Some LocalAnswer.PipelineFailed, LocalAnswer.ofPlan true failed)

    // (a translated provider's count_tokens plan: ChatDialectTests)
    let counted = {
        sent with
            Answer = AnswerDialect.Local(200, [||])
            Operation = Operation.CountTokens
    }

    Assert.Equal(Some LocalAnswer.CountTokens, LocalAnswer.ofPlan false counted)
    // a pipeline that failed on a token count is still the pipeline's error
    let failure = {
        Step = "x"
        Reason = "y"
        Kind = FailedStep.Transformer
    }

    Assert.Equal(Some LocalAnswer.PipelineFailed, LocalAnswer.ofPlan true (Pipeline.failedPlan counted [] failure))

[<Fact>]
let ``a local answer's result is the relay's own: ok, or its error type, never an upstream status`` () =
    Assert.Equal(RequestResult.Ok, LocalAnswer.result 200)
    Assert.Equal(RequestResult.Refused(ErrorType.InvalidRequest, 400), LocalAnswer.result 400)
    Assert.Equal(RequestResult.Refused(ErrorType.Api, 500), LocalAnswer.result 500)
    Assert.Equal("invalid_request_error", RequestResult.wireName (LocalAnswer.result 400))

    Assert.Equal<string list>(
        [ "pipeline_error"; "dropped_refused"; "count_tokens" ],
        [
            LocalAnswer.PipelineFailed
            LocalAnswer.DroppedRefused
            LocalAnswer.CountTokens
        ]
        |> List.map LocalAnswer.wireName
    )

using CcRelay.Core;

namespace CcRelay.Host.Http;

/// <summary>The facts of one relayed request, collected on the hot path and logged once at its end.</summary>
internal sealed class RequestRecord
{
    public required string RequestId { get; init; }

    public required string Method { get; init; }

    public required string Path { get; init; }

    /// <summary>The request's clock: its start, its upstream waits, its overhead.</summary>
    public required RequestTiming Timing { get; init; }

    /// <summary>Whether the completion line (and so the fields only it shows, like key ids) is written.</summary>
    public bool Detailed { get; init; }

    /// <summary><see cref="KeyId"/> of the caller's credential (<c>x-api-key</c> or bearer token); <c>-</c> when none or not logged.</summary>
    public string ClientKeyId { get; set; } = "-";

    /// <summary>The client's name (<c>clients[].name</c>); <c>-</c> when the request came through <c>server.auth</c> or an open relay.</summary>
    public string Client { get; set; } = "-";

    public string Provider { get; set; } = "-";

    /// <summary><see cref="KeyId"/> of the credential sent upstream; <c>-</c> when none or not logged.</summary>
    public string KeyId { get; set; } = "-";

    public string Model { get; set; } = "-";

    public string UpstreamModel { get; set; } = "-";

    /// <summary>Whether the upstream's answer was translated (an <c>openai</c> or <c>gemini</c> provider): its
    /// <c>model</c> is then the client's, and <see cref="EffectiveModel"/> is <see cref="UpstreamModel"/>.</summary>
    public bool Translated { get; set; }

    /// <summary>The routing stage the request was classified into (<c>Stages.classify</c>); <c>-</c> before routing.</summary>
    public string Stage { get; set; } = "-";

    /// <summary>Why that stage (a short, bounded reason); <c>-</c> before routing.</summary>
    public string StageReason { get; set; } = "-";

    /// <summary>The status the client got.</summary>
    public int Status { get; set; }

    /// <summary>The status the current upstream attempt answered with; 0 while it has not answered.</summary>
    public int UpstreamStatus { get; set; }

    public bool Stream { get; set; }

    public long BytesIn { get; set; }

    public long BytesOut { get; set; }

    /// <summary>Elapsed ms from the request's start to the upstream's response headers; -1 when none came.</summary>
    public double TtfbMs { get; set; } = -1;

    /// <summary>How the request ended: <c>ok</c>, an error type, <c>client_aborted</c>, … (<see cref="Ended"/> sets it from Core's <see cref="RequestResult"/>).</summary>
    public string Result { get; set; } = "ok";

    /// <summary>
    /// Records what happened to the request, as Core names it: the result, the error type the client saw and,
    /// where the relay decides it (a refusal, a client that left) and the answer's own status is not already out
    /// (<paramref name="relayed"/>), the status.
    /// </summary>
    public void Ended(RequestResult result, bool relayed = false)
    {
        Result = result.WireName;
        ErrorType = result.ClientErrorType;
        if (!relayed && result.RelayStatus is { } status)
        {
            Status = status;
        }
    }

    /// <summary>
    /// The Anthropic error type the client saw, when it saw one: the relay's own (<c>timeout_error</c>, …),
    /// the upstream's error body's <c>error.type</c>, or that of an SSE <c>error</c> event. Null on success.
    /// </summary>
    public string? ErrorType { get; set; }

    /// <summary>Upstream attempts made (0 when the request was refused before routing).</summary>
    public int Attempts { get; set; }

    /// <summary>The providers of the failed attempts that were followed by another, in order; null when none failed over.</summary>
    public List<string>? FailedOver { get; set; }

    /// <summary>What the answer said about itself (model, usage, stop reason, error type); null when no answer was read.</summary>
    public AnswerUsage? Answer { get; set; }

    /// <summary>The answer's token usage; null when unknown (no answer, or an answer without <c>usage</c>). Unknown is not zero.</summary>
    public Usage? Usage => Answer?.Usage?.Value;

    /// <summary>The answer's estimated cost in USD; null when unknown (no usage, or no price for the model).</summary>
    public decimal? CostUsd { get; set; }

    /// <summary>The model the upstream answered with (for a translated answer, the one sent upstream), else the one
    /// sent upstream, else the one requested; null when none is known.</summary>
    public string? EffectiveModel =>
        RenamedFrom ?? (Translated ? null : Answer?.Model?.Value) ?? (UpstreamModel != "-" ? UpstreamModel : Model != "-" ? Model : null);

    /// <summary>
    /// The model the upstream's answer named when the relay named the client's model in it instead (a
    /// <c>model_mapping</c> target or a switched model, <see cref="CcRelay.Core.AnswerModel"/>); null when not renamed.
    /// </summary>
    public string? RenamedFrom { get; set; }

    /// <summary>The model the upstream's answer named (before any renaming); null when unknown.</summary>
    public string? ResponseModel => RenamedFrom ?? Answer?.Model?.Value;

    /// <summary>From the request's start to its end (the last byte sent); set when it ends.</summary>
    public TimeSpan Elapsed { get; set; }

    /// <summary>When the request ended (UTC), the time its request line shows; <c>default</c> until it ends.</summary>
    public DateTime EndedAt { get; set; }

    /// <summary>
    /// What the target could not carry (<c>x-cc-relay-dropped</c>: left out, or refused with <c>on_dropped: refuse</c>),
    /// comma-separated; null when nothing.
    /// </summary>
    public string? Dropped { get; set; }

    /// <summary>The provider label for metrics: <c>none</c> when no provider was chosen.</summary>
    public string ProviderLabel => Provider == "-" ? "none" : Provider;

    /// <summary>
    /// The relay answered the request itself, calling no upstream (<c>LocalAnswer.wireName</c>:
    /// <c>pipeline_error</c>, <c>dropped_refused</c>, <c>count_tokens</c>); null when an upstream answered (or none did).
    /// </summary>
    public string? Local { get; set; }
}

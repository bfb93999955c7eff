using System.Diagnostics;
using System.Net.Http.Headers;
using CcRelay.Core;
using CcRelay.Host.Metrics;
using CcRelay.Host.Observability;
using MetricOutcome = CcRelay.Core.AttemptOutcome;

namespace CcRelay.Host.Forwarding;

/// <summary>Why an attempt got no response.</summary>
internal enum AttemptFailure
{
    /// <summary>It got one.</summary>
    None,

    /// <summary>No connection, or it broke before any answer.</summary>
    ConnectFailed,

    /// <summary>No response headers within <c>server.first_byte_timeout_ms</c>.</summary>
    TimedOut,

    /// <summary>The client went away.</summary>
    ClientAborted,

    /// <summary>Nothing was sent: the relay could not make the request for this provider (a body it cannot reshape).</summary>
    NotSent,
}

/// <summary>What <see cref="UpstreamForwarder.SendAsync"/> got: a response, or why there is none.</summary>
internal readonly record struct AttemptOutcome(AttemptResponse? Response, AttemptFailure Failure, string Reason);

/// <summary>
/// An upstream answer whose headers arrived but which is not yet committed to the client. It owns the
/// request, the response and the attempt's cancellation; disposing it discards the answer.
/// </summary>
internal sealed class AttemptResponse(
    UpstreamPlan plan,
    HttpRequestMessage request,
    HttpResponseMessage response,
    UpstreamBodyContent content,
    CancellationTokenSource cancellation,
    TimeSpan firstByte,
    RelayMetrics metrics,
    Activity? span) : IDisposable
{
    private int _ended;

    public UpstreamPlan Plan { get; } = plan;

    public HttpRequestMessage Request { get; } = request;

    public HttpResponseMessage Response { get; } = response;

    public UpstreamBodyContent Content { get; } = content;

    public CancellationTokenSource Cancellation { get; } = cancellation;

    /// <summary>From sending to response headers.</summary>
    public TimeSpan FirstByte { get; } = firstByte;

    public int Status => (int)Response.StatusCode;

    /// <summary>A 200 stream's body, its first event already read into a prefix; null otherwise.</summary>
    public Stream? Peeked { get; set; }

    /// <summary>Whether the answer is relayed as an SSE stream (an Anthropic stream, or another framing converted to one).</summary>
    public bool IsStream { get; set; }

    /// <summary>Whether the stream was converted from another framing (its upstream Content-Type is not relayed).</summary>
    public bool Converted { get; set; }

    /// <summary>The <c>error.type</c> of a 200 stream whose first event was <c>error</c>; null otherwise.</summary>
    public string? StreamErrorType { get; set; }

    /// <summary>A response header's first value (message or content headers); null when absent.</summary>
    public string? Header(string name) =>
        Response.Headers.NonValidated.TryGetValues(name, out var values) || Response.Content.Headers.NonValidated.TryGetValues(name, out values)
            ? First(values)
            : null;

    private static string? First(HeaderStringValues values)
    {
        foreach (var value in values)
        {
            return value;
        }

        return null;
    }

    /// <summary>The model the upstream's answer named before the relay named the client's in it (<see cref="AnswerModel"/>); null when not renamed.</summary>
    public string? RenamedFrom { get; set; }

    /// <summary>Whether the answer names the client's model instead of the one that answered (<see cref="AnswerModel.renames"/>).</summary>
    public bool Renames { get; set; }

    /// <summary>The key id of the credential this attempt sent; <c>-</c> when none.</summary>
    public string KeyId { get; init; } = "-";

    /// <summary>What the attempt's pipelines did (null: none applied).</summary>
    public AttemptPipeline? Pipeline { get; init; }

    /// <summary>The answer side's plugin steps on a whole JSON answer, as reported (empty: none ran).</summary>
    public string AnswerReport { get; set; } = "";

    /// <summary>The relay's error that replaces the answer: an answer-side plugin failed under <c>on_error: fail</c> (null: none).</summary>
    public byte[]? AnswerRefusal { get; set; }

    /// <summary>The answer the relay made itself, calling no upstream (null: the upstream answered): not an upstream attempt.</summary>
    public LocalAnswer? Local { get; init; }

    /// <summary>
    /// Accounts for the attempt (metrics, span) once: with how its relay ended, or, for an answer that is
    /// discarded (retried, replaced, lost a hedge), with what its status says.
    /// </summary>
    public void End(MetricOutcome outcome, AnswerUsage? answer = null, string? error = null)
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0)
        {
            // :: Step 9: account for the attempt (an answer the relay made itself was no upstream attempt)
            if (Local is null)
            {
                metrics.RecordAttempt(Plan.Provider.Name, outcome);
            }

            RelayTracing.EndAttempt(span, Status, answer, error, outcome);
        }
    }

    /// <summary>Accounts for an answer that will not be relayed as it stands (what its status says).</summary>
    public void Discarded()
    {
        if (StreamErrorType is { } streamError)
        {
            End(MetricOutcome.NewFailure("error event"), null, streamError);
        }
        else
        {
            var outcome = Outcome.ofStatus(Status);
            End(outcome, null, outcome.IsSuccess ? null : "upstream_" + Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    public void Dispose()
    {
        Discarded();
        Peeked?.Dispose();
        Response.Dispose();
        Request.Dispose();
        Cancellation.Dispose();
    }
}

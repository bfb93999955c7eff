using System.Globalization;
using System.Threading.RateLimiting;
using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Edge;

/// <summary>
/// A per-client concurrency limit, checked after the relay-wide one (the hook for client keys: docs/security.md).
/// Return a lease that is not acquired to refuse the request; its <see cref="MetadataName.RetryAfter"/>, when set,
/// becomes the answer's <c>retry-after</c>.
/// </summary>
public interface IClientConcurrency
{
    /// <summary>Acquires the caller's slot, waiting at most until <paramref name="cancellationToken"/> fires.</summary>
    ValueTask<RateLimitLease> AcquireAsync(HttpContext context, CancellationToken cancellationToken);
}

/// <summary>
/// <c>server.max_concurrent</c>, enforced: relayed requests take a slot of a <see cref="ConcurrencyLimiter"/>;
/// up to <c>server.queue_size</c> more wait (oldest first) at most <c>server.queue_timeout_ms</c>; the rest are
/// answered 529 <c>overloaded_error</c> with <c>retry-after</c>. The slot is held until the handler returns,
/// whatever ends it (an answer, an error, the client's abort). Reads of the relay (<c>/v1/models</c>, <c>/health</c>,
/// metrics) take no slot.
/// </summary>
/// <remarks>
/// NOTE: a reload that changes the limits starts a new limiter; requests holding a slot of the old one release
/// it there, so for as long as they run the relay may have up to both limits' worth in flight.
/// </remarks>
internal sealed class AdmissionGate(
    RelayState state,
    TimeProvider timeProvider,
    Metrics.RelayMetrics? metrics = null,
    IClientConcurrency? clients = null,
    Http.RequestAccounting? accounting = null,
    Microsoft.Extensions.Logging.ILogger? requestLogger = null)
{
    private Gate? _gate;

    /// <summary>Wraps a relayed route's handler.</summary>
    public RequestDelegate Wrap(RequestDelegate handler) => context => InvokeAsync(context, handler);

    private async Task InvokeAsync(HttpContext context, RequestDelegate handler)
    {
        var limits = Admission.limits(state.Current.Config);
        if (limits.Unlimited && clients is null)
        {
            await handler(context);
            return;
        }

        using var global = limits.Unlimited ? null : await AcquireAsync(context, GateFor(limits).Limiter, limits);
        if (global is { IsAcquired: false })
        {
            return;
        }

        using var own = clients is null ? null : await AcquireAsync(context, clients, limits);
        if (own is { IsAcquired: false })
        {
            return;
        }

        await handler(context);
    }

    private Task<RateLimitLease> AcquireAsync(HttpContext context, ConcurrencyLimiter limiter, AdmissionLimits limits)
    {
        // a free slot is taken at once, whatever the queue's wait (even 0)
        var lease = limiter.AttemptAcquire(1);
        if (lease.IsAcquired)
        {
            return Task.FromResult(lease);
        }

        lease.Dispose();
        return AcquireAsync(context, token => limiter.AcquireAsync(1, token), limits);
    }

    private Task<RateLimitLease> AcquireAsync(HttpContext context, IClientConcurrency client, AdmissionLimits limits) =>
        AcquireAsync(context, token => client.AcquireAsync(context, token), limits);

    /// <summary>Waits for a lease; a refused one has its 529 written already (nothing is written when the client left).</summary>
    private async Task<RateLimitLease> AcquireAsync(HttpContext context, Func<CancellationToken, ValueTask<RateLimitLease>> acquire, AdmissionLimits limits)
    {
        using var wait = new CancellationTokenSource(limits.QueueTimeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(wait.Token, context.RequestAborted);
        RateLimitLease lease;
        AdmissionRefusal refusal;
        try
        {
            lease = await acquire(linked.Token);
            if (lease.IsAcquired)
            {
                return lease;
            }

            refusal = AdmissionRefusal.QueueFull;
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            lease = Refusal.Instance;
            refusal = AdmissionRefusal.WaitedTooLong;
        }
        catch (OperationCanceledException)
        {
            // the client left while it waited: nothing to answer
            return Refusal.Instance;
        }

        metrics?.RecordAdmissionRefused(refusal.IsQueueFull ? "queue_full" : "waited_too_long");
        var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan after)
            ? Failover.retryAfterSeconds(after)
            : Admission.retryAfterSeconds(limits);
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        var timing = RelayResponseHeaders.Stamp(context, timeProvider);
        var bytesOut = await ErrorResponse.WriteAsync(context, ErrorType.Overloaded, Admission.message(limits, refusal));
        Account(context, timing, bytesOut);
        return lease;
    }

    /// <summary>
    /// The request line (and metrics, and ledger row) of a request refused here: status 529, no upstream, no model
    /// (its body was never read), the key id of the credential it sent.
    /// </summary>
    private void Account(HttpContext context, RequestTiming timing, int bytesOut)
    {
        if (accounting is null)
        {
            return;
        }

        var record = new Http.RequestRecord
        {
            RequestId = timing.RequestId,
            Method = context.Request.Method,
            Path = context.Request.Path.Value ?? "",
            Timing = timing,
            Detailed = requestLogger?.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information) ?? false,
        };
        if (record.Detailed)
        {
            var apiKey = context.Request.Headers["x-api-key"].ToString();
            record.ClientKeyId = apiKey.Length > 0 ? state.Current.KeyIdOf(apiKey)
                : Headers.tryBearer(context.Request.Headers.Authorization.ToString())?.Value is { Length: > 0 } token ? state.Current.KeyIdOf(token)
                : "-";
        }

        record.Ended(RequestResult.NewRefused(ErrorType.Overloaded, ErrorEnvelope.status(ErrorType.Overloaded)));
        record.BytesOut = bytesOut;
        record.Elapsed = timing.Elapsed;
        record.EndedAt = timeProvider.GetUtcNow().UtcDateTime;
        accounting.Add(record);
    }

    private Gate GateFor(AdmissionLimits limits)
    {
        var gate = Volatile.Read(ref _gate);
        if (gate is not null && gate.Limits.Equals(limits))
        {
            return gate;
        }

        var fresh = new Gate(limits, new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = limits.MaxConcurrent,
            QueueLimit = limits.QueueSize,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        }));

        // a racing request may have installed one for the same limits: use whichever won
        var won = Interlocked.CompareExchange(ref _gate, fresh, gate);
        return won == gate ? fresh : won!;
    }

    private sealed record Gate(AdmissionLimits Limits, ConcurrencyLimiter Limiter);

    /// <summary>A lease that was not acquired (the wait was cancelled).</summary>
    private sealed class Refusal : RateLimitLease
    {
        public static readonly Refusal Instance = new();

        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}

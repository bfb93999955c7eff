using System.Threading.Channels;
using CcRelay.Core;
using CcRelay.Host.Http;
using CcRelay.Host.Routing;
using CcRelay.Management.V1;

namespace CcRelay.Host.Management;

/// <summary>
/// What the management API knows about completed requests, recorded by the relay itself where a request's
/// record ends (<see cref="Endpoints.MessagesEndpoint"/>, step 9): totals since start, the samples of the
/// statistics window (<see cref="RequestStats"/>), and the <c>WatchRequests</c> subscribers. A subscriber
/// reads from a bounded buffer: a slow reader loses its oldest messages (counted), never slows a request.
/// </summary>
public sealed class RequestFeed
{
    /// <summary>The longest window a <c>WatchStats</c> call may ask for.</summary>
    public static readonly TimeSpan MaxWindow = TimeSpan.FromHours(1);

    /// <summary>Samples kept at most (the window's memory bound); older ones are dropped and counted.</summary>
    internal const int MaxSamples = 200_000;

    /// <summary>Messages a <c>WatchRequests</c> reader may fall behind before it loses the oldest.</summary>
    internal const int SubscriberBuffer = 4096;

    /// <summary>The buffer of each new subscriber (<see cref="SubscriberBuffer"/>; tests make it small).</summary>
    internal int SubscriberCapacity { get; set; } = SubscriberBuffer;

    private readonly Lock _gate = new();
    private readonly Queue<RequestSample> _samples = new();
    private readonly RuntimeCell _runtime;
    private Subscriber[] _subscribers = [];
    private long _requests;
    private long _errors;
    private long _inFlight;
    private long _inputTokens;
    private long _outputTokens;
    private decimal _cost;
    private long _samplesDropped;

    /// <summary>Creates the feed; times are the runtime's monotonic clock.</summary>
    public RequestFeed(RuntimeCell runtime) => _runtime = runtime;

    /// <summary>Totals since the relay started.</summary>
    public Totals Totals()
    {
        lock (_gate)
        {
            return new Totals
            {
                Requests = _requests,
                Errors = _errors,
                InFlight = Volatile.Read(ref _inFlight),
                InputTokens = _inputTokens,
                OutputTokens = _outputTokens,
                CostUsd = (double)_cost,
            };
        }
    }

    /// <summary>Samples dropped because the window held <see cref="MaxSamples"/>.</summary>
    public long SamplesDropped => Interlocked.Read(ref _samplesDropped);

    /// <summary>A request started (the in-flight total).</summary>
    internal void Started() => Interlocked.Increment(ref _inFlight);

    /// <summary>Records a finished request (its record complete) and hands it to every subscriber.</summary>
    internal void Completed(RequestRecord record)
    {
        Interlocked.Decrement(ref _inFlight);
        var errorClass = RequestStats.errorClass(record.Status, record.Result);
        var usage = record.Usage;
        var sample = RequestSample.Create(
            _runtime.Now,
            record.ProviderLabel,
            record.Status,
            errorClass,
            record.Elapsed.TotalMilliseconds,
            record.TtfbMs,
            usage?.InputTokens ?? 0,
            usage?.OutputTokens ?? 0,
            record.CostUsd ?? 0m,
            record.Local is not null,
            record.FailedOver);

        lock (_gate)
        {
            _requests++;
            _errors += errorClass.Length > 0 ? 1 : 0;
            _inputTokens += sample.InputTokens;
            _outputTokens += sample.OutputTokens;
            _cost += sample.CostUsd;
            _samples.Enqueue(sample);
            Prune(sample.At);
        }

        var subscribers = Volatile.Read(ref _subscribers);
        if (subscribers.Length == 0)
        {
            return;
        }

        var message = new CompletedRequest
        {
            EndedUnixMs = new DateTimeOffset(record.EndedAt, TimeSpan.Zero).ToUnixTimeMilliseconds(),
            RequestId = record.RequestId,
            Provider = record.ProviderLabel,
            Model = record.Model,
            UpstreamModel = record.EffectiveModel ?? "",
            KeyId = record.KeyId,
            Status = record.Status,
            Result = record.Result,
            ErrorClass = errorClass,
            LatencyMs = sample.LatencyMs,
            TtfbMs = record.TtfbMs,
            Attempts = record.Attempts,
            Stream = record.Stream,
            InputTokens = usage?.InputTokens ?? -1,
            OutputTokens = usage?.OutputTokens ?? -1,
            CostUsd = record.CostUsd is { } cost ? (double)cost : -1,
            Local = record.Local ?? "",
        };
        if (record.FailedOver is { } failedOver)
        {
            message.FailedOver.AddRange(failedOver);
        }

        foreach (var subscriber in subscribers)
        {
            if (subscriber.Provider.Length == 0 || string.Equals(subscriber.Provider, message.Provider, StringComparison.Ordinal))
            {
                subscriber.Channel.Writer.TryWrite(message);
            }
        }
    }

    /// <summary>The samples of the last <see cref="MaxWindow"/> at <paramref name="now"/>, oldest first.</summary>
    internal RequestSample[] Samples(TimeSpan now)
    {
        lock (_gate)
        {
            Prune(now);
            return [.. _samples];
        }
    }

    /// <summary>Subscribes to completed requests (of one provider, or all when empty) until disposed.</summary>
    internal Subscription Subscribe(string provider)
    {
        var subscriber = new Subscriber(provider, SubscriberCapacity);
        lock (_gate)
        {
            Volatile.Write(ref _subscribers, [.. _subscribers, subscriber]);
        }

        return new Subscription(this, subscriber);
    }

    private void Unsubscribe(Subscriber subscriber)
    {
        lock (_gate)
        {
            Volatile.Write(ref _subscribers, [.. _subscribers.Where(s => !ReferenceEquals(s, subscriber))]);
        }

        subscriber.Channel.Writer.TryComplete();
    }

    private void Prune(TimeSpan now)
    {
        while (_samples.Count > 0 && (now - _samples.Peek().At >= MaxWindow || _samples.Count > MaxSamples))
        {
            if (now - _samples.Dequeue().At < MaxWindow)
            {
                _samplesDropped++;
            }
        }
    }

    /// <summary>One <c>WatchRequests</c> call's buffer.</summary>
    internal sealed class Subscriber
    {
        private long _dropped;

        public Subscriber(string provider, int capacity)
        {
            Provider = provider;
            Channel = System.Threading.Channels.Channel.CreateBounded<CompletedRequest>(
                new BoundedChannelOptions(capacity)
                {
                    FullMode = BoundedChannelFullMode.DropOldest,
                    SingleReader = true,
                    SingleWriter = false,
                },
                _ => Interlocked.Increment(ref _dropped));
        }

        public string Provider { get; }

        public Channel<CompletedRequest> Channel { get; }

        /// <summary>Messages dropped because the reader fell behind.</summary>
        public long Dropped => Interlocked.Read(ref _dropped);
    }

    /// <summary>A subscription; disposing it ends it.</summary>
    internal sealed class Subscription(RequestFeed feed, Subscriber subscriber) : IDisposable
    {
        public ChannelReader<CompletedRequest> Reader => subscriber.Channel.Reader;

        public long Dropped => subscriber.Dropped;

        public void Dispose() => feed.Unsubscribe(subscriber);
    }
}

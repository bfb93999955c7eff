using CcRelay.Core;
using CcRelay.Host.Endpoints;
using CcRelay.Host.Http;
using CcRelay.Host.Metrics;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Core;
using LogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace CcRelay.Host.Tests.Http;

/// <summary>
/// Finished requests are accounted for (metrics, request line) off their threads: exactly once each, by the
/// accounting thread or by whoever drains first (a scrape, the shutdown), never lost, never counted twice.
/// </summary>
public sealed class RequestAccountingTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private readonly CapturedLogs _logs = new();
    private readonly ILoggerFactory _loggerFactory;
    private MetricsHost _host = null!;
    private RelayMetrics _metrics = null!;
    private PrometheusExposition _exposition = null!;

    public RequestAccountingTests() =>
        _loggerFactory = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(_logs));

    public async Task InitializeAsync()
    {
        _host = await MetricsHost.StartAsync();
        _metrics = _host.Metrics;
        _exposition = _host.Exposition;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _loggerFactory.Dispose();
    }

    private RequestAccounting Accounting(TimeSpan interval) => new(_metrics, _loggerFactory.CreateLogger<MessagesEndpoint>(), interval);

    private static RequestRecord Finished(int i, DateTime? endedAt = null) =>
        new()
        {
            RequestId = "req_" + i,
            Method = "POST",
            Path = "/v1/messages",
            Timing = new RequestTiming(TimeProvider.System, "req_" + i, new DefaultHttpContext().Response),
            Provider = "fake",
            Model = "claude-sonnet-4-6",
            UpstreamModel = "claude-sonnet-4-6",
            Status = 200,
            Stream = i % 2 == 0,
            Attempts = 1,
            Answer = new AnswerUsage(
                FSharpOption<string>.Some("claude-sonnet-4-6"),
                FSharpOption<Usage>.Some(new Usage(10, i, 0, 0)),
                FSharpOption<string>.Some("end_turn"),
                FSharpOption<string>.None),
            CostUsd = 0.001m,
            Elapsed = TimeSpan.FromMilliseconds(100 + i),
            EndedAt = endedAt ?? new DateTime(2026, 11, 22, 7, 0, 0, DateTimeKind.Utc).AddMilliseconds(i),
        };

    private Task<PrometheusTextParser> ScrapeAsync() => _host.ScrapeAsync();

    private static double Requests(PrometheusTextParser scrape) => scrape.Named("ccrelay_requests_total").Sum(s => s.Value);

    [Fact]
    public async Task Drain_AccountsForEveryQueuedRecord_OnceAndOnlyThen()
    {
        // Arrange: no accounting thread, so only Drain accounts
        using var accounting = Accounting(Timeout.InfiniteTimeSpan);

        // Act
        for (var i = 1; i <= 3; i++)
        {
            accounting.Add(Finished(i));
        }

        var queued = await ScrapeAsync();
        var linesQueued = _logs.Lines.Count;
        accounting.Drain();
        accounting.Drain();
        var drained = await ScrapeAsync();

        // Assert: nothing before the drain; each record once after it, with its usage, duration and line
        Assert.Equal(0, Requests(queued));
        Assert.Equal(0, linesQueued);
        Assert.Equal(0, accounting.Pending);
        Assert.Equal(3, Requests(drained));
        Assert.Equal(1, drained.Value("ccrelay_requests_total", ("provider", "fake"), ("model", "claude-sonnet-4-6"), ("status_class", "2xx"), ("stream", "true")));
        Assert.Equal(3, drained.Value("ccrelay_request_duration_seconds_count", ("provider", "fake"), ("model", "claude-sonnet-4-6")));
        Assert.Equal(0.306, drained.Value("ccrelay_request_duration_seconds_sum", ("provider", "fake"), ("model", "claude-sonnet-4-6")), 9);
        Assert.Equal(1 + 2 + 3, drained.Value("ccrelay_tokens_total", ("provider", "fake"), ("model", "claude-sonnet-4-6"), ("kind", "output")));
        Assert.Equal(["req_1", "req_2", "req_3"], _logs.Lines.Where(l => l.EventId == 1).Select(l => (string?)l.Fields["request_id"]));
    }

    [Fact]
    public async Task Scrape_WithTheDrainHooked_ShowsRequestsTheThreadHasNotAccountedForYet()
    {
        // Arrange: the accounting thread would wait an hour; the scrape drains first, as the relay wires it
        using var accounting = Accounting(TimeSpan.FromHours(1));
        _exposition.OnScrape(accounting.Drain);
        accounting.Add(Finished(1));
        accounting.Add(Finished(2));

        // Act
        var scrape = await ScrapeAsync();

        // Assert
        Assert.Equal(2, Requests(scrape));
        Assert.Equal(0, accounting.Pending);
    }

    [Fact]
    public async Task Thread_AccountsWithoutBeingAsked_AndAgainAfterFallingAsleep()
    {
        // Arrange
        using var accounting = Accounting(TimeSpan.FromMilliseconds(1));

        // Act: one request; then, once the thread has gone to sleep for want of work, another
        accounting.Add(Finished(1));
        await _logs.RequestLinesAsync(1);
        Assert.True(SpinWait.SpinUntil(() => accounting.Asleep, Bound), "the accounting thread never went to sleep");
        accounting.Add(Finished(2));
        var lines = await _logs.RequestLinesAsync(2);

        // Assert: the second request woke it
        Assert.Equal(["req_1", "req_2"], lines.Select(l => (string?)l.Fields["request_id"]));
    }

    [Fact]
    public async Task Dispose_AccountsForWhatIsStillQueued_WithoutWaitingForTheInterval()
    {
        // Arrange
        var accounting = Accounting(TimeSpan.FromHours(1));
        accounting.Add(Finished(1));
        var started = TimeProvider.System.GetTimestamp();

        // Act
        accounting.Dispose();

        // Assert
        Assert.True(TimeProvider.System.GetElapsedTime(started) < Bound);
        Assert.Equal(1, Requests(await ScrapeAsync()));
        Assert.Single(_logs.Lines, l => l.EventId == 1);
    }

    [Fact]
    public async Task Add_AfterDispose_AccountsAtOnce()
    {
        // Arrange
        var accounting = Accounting(TimeSpan.FromHours(1));
        accounting.Dispose();

        // Act: a request the host's shutdown gave up on ends after the relay stopped
        accounting.Add(Finished(1));

        // Assert
        Assert.Equal(1, Requests(await ScrapeAsync()));
        Assert.Single(_logs.Lines, l => l.EventId == 1);
    }

    [Fact]
    public async Task ThrowingLogger_FailsOnlyItsOwnLines_TheRestIsStillAccounted()
    {
        // Arrange: a logger provider that throws on every request line
        using var factory = LoggerFactory.Create(logging => logging.AddProvider(_logs).AddProvider(new ThrowingOnRequestLines()));
        using var accounting = new RequestAccounting(_metrics, factory.CreateLogger<MessagesEndpoint>(), Timeout.InfiniteTimeSpan);

        // Act
        for (var i = 1; i <= 3; i++)
        {
            accounting.Add(Finished(i));
        }

        accounting.Drain();

        // Assert: every request counted; every failure reported with its request id
        Assert.Equal(3, Requests(await ScrapeAsync()));
        Assert.Equal(["req_1", "req_2", "req_3"], _logs.Lines.Where(l => l.EventId == 30).Select(l => (string?)l.Fields["request_id"]));
    }

    [Fact]
    public async Task ManyThreadsAdding_WhileScrapesDrain_EveryRecordIsAccountedExactlyOnce()
    {
        // Arrange: four producers, a busy accounting thread and scrapes that drain, all at once
        using var accounting = Accounting(TimeSpan.FromMilliseconds(1));
        _exposition.OnScrape(accounting.Drain);
        const int PerThread = 2_000;
        using var done = new CancellationTokenSource();
        var scraping = Task.Run(async () =>
        {
            var scrapes = 0;
            while (!done.IsCancellationRequested)
            {
                _ = await _host.RenderAsync();
                scrapes++;
            }

            return scrapes;
        });

        // Act
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                accounting.Add(Finished((t * PerThread) + i));
            }
        })));
        var final = await ScrapeAsync();
        done.Cancel();
        var scrapes = await scraping;

        // Assert
        Assert.True(scrapes > 0);
        Assert.Equal(4 * PerThread, Requests(final));
        var ids = _logs.Lines.Where(l => l.EventId == 1).Select(l => (string?)l.Fields["request_id"]).ToList();
        Assert.Equal(4 * PerThread, ids.Count);
        Assert.Equal(4 * PerThread, ids.Distinct().Count());
    }

    private sealed class ThrowingOnRequestLines : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger();

        public void Dispose()
        {
        }

        private sealed class Logger : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (eventId.Id == 1)
                {
                    throw new InvalidOperationException("this provider fails");
                }
            }
        }
    }
}

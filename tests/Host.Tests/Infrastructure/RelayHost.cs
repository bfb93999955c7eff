using System.Net;
using CcRelay.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>The real relay (the same builder the CLI uses) on Kestrel at 127.0.0.1:0.</summary>
public sealed class RelayHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private string? _ledgerDirectory;

    private RelayHost(WebApplication app, CapturedLogs logs, Uri baseUrl)
    {
        _app = app;
        Logs = logs;
        BaseUrl = baseUrl;
        Client = new HttpClient(new SocketsHttpHandler
        {
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
        })
        {
            BaseAddress = baseUrl,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    public Uri BaseUrl { get; }

    public HttpClient Client { get; }

    public CapturedLogs Logs { get; }

    public RelayState State => (RelayState)_app.Services.GetService(typeof(RelayState))!;

    public IServiceProvider Services => _app.Services;

    /// <summary>Every address the relay listens on: its own first, then the metrics listener's (metrics.listen).</summary>
    public IReadOnlyList<Uri> Addresses => [.. CcRelayServer.Addresses(_app).Select(a => new Uri(a))];

    /// <summary>Scrapes <paramref name="path"/> on the relay's own listener (or on <paramref name="baseUrl"/>).</summary>
    public async Task<string> ScrapeAsync(string path = "/metrics", Uri? baseUrl = null)
    {
        using var response = await Client.GetAsync(new Uri(baseUrl ?? BaseUrl, path));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    public CcRelay.Host.Reload.ConfigReloader Reloader => (CcRelay.Host.Reload.ConfigReloader)_app.Services.GetService(typeof(CcRelay.Host.Reload.ConfigReloader))!;

    /// <summary>
    /// Starts a relay on <c>127.0.0.1:0</c>. <paramref name="accountingInterval"/>: how long finished requests wait
    /// for their metrics and request line (<see cref="Timeout.InfiniteTimeSpan"/>: until a scrape or the end).
    /// </summary>
    public static async Task<RelayHost> StartAsync(RelayConfig config, string? configPath = null, TimeProvider? timeProvider = null, TimeSpan? accountingInterval = null, TimeSpan? pingInterval = null, bool watchConfig = true)
    {
        // a config without ledger.path would write the machine's own ledger (~/.local/state): each test relay's
        // state directory is a temporary one
        var ledgerDirectory = Directory.CreateTempSubdirectory("cc-relay-test-state-").FullName;

        var logs = new CapturedLogs();
        var app = CcRelayServer.Build(config, new CcRelayServerOptions
        {
            ConfigPath = configPath,
            TimeProvider = timeProvider,
            AccountingInterval = accountingInterval,
            PingInterval = pingInterval,
            WatchConfig = watchConfig,
            ConfigureLogging = logging => logging.AddProvider(logs),
            Environment = name => name == "XDG_STATE_HOME" ? ledgerDirectory : System.Environment.GetEnvironmentVariable(name),
        });
        await app.StartAsync();
        return new RelayHost(app, logs, new Uri(CcRelayServer.Addresses(app)[0])) { _ledgerDirectory = ledgerDirectory };
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_ledgerDirectory is not null)
        {
            Directory.Delete(_ledgerDirectory, recursive: true);
        }
    }
}

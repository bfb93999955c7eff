using System.Net;
using CcRelay.Core;
using CcRelay.Host.Edge;
using CcRelay.Host.Logging;
using CcRelay.Host.Management;
using CcRelay.Host.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace CcRelay.Host;

/// <summary>Builds the standalone relay: Kestrel on the configured address, the relay's routes, its logging.</summary>
public static class CcRelayServer
{
    /// <summary>Builds (does not start) a relay application for a validated configuration.</summary>
    public static WebApplication Build(RelayConfig config, CcRelayServerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        options ??= new CcRelayServerOptions();

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = options.InlineScheduling);

        // server.tls: loaded now, so a bad pair fails the start (ConfigFile reports it at its key before this)
        var edge = config.Edge;
        CertificateHolder? certificate = null;
        if (edge.Tls is { } tls)
        {
            certificate = new CertificateHolder(tls.Value, NullLogger.Instance);
            _ = certificate.Current;
            builder.WebHost.UseKestrelHttpsConfiguration();
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null; // the relay enforces server.max_body_bytes itself
            EdgeKestrel.ApplyLimits(kestrel.Limits, edge.Limits);
            var protocols = config.Server.EnableHttp2 ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1;
            var handshake = TimeSpan.FromMilliseconds(edge.Limits.RequestHeadersTimeoutMs);
            Listen(kestrel, config.Server.Listen, o =>
            {
                o.Protocols = protocols;
                if (edge.Tls is { Value: { Listen: null } tls } && certificate is not null)
                {
                    EdgeKestrel.UseTls(o, certificate, tls.MinVersion, protocols, handshake);
                }
            });
            if (edge.Tls is { Value: { Listen.Value: var tlsListen } tlsConfig } && certificate is not null)
            {
                // a second listener, for TLS only, added right after the relay's own (Addresses(app)[1])
                Listen(kestrel, tlsListen, o =>
                {
                    o.Protocols = protocols;
                    EdgeKestrel.UseTls(o, certificate, tlsConfig.MinVersion, protocols, handshake);
                });
            }

            if (config.Metrics is { Enabled: true, Listen.Value: var metricsListen })
            {
                // added second, so Addresses(app)[0] stays the relay's own address
                Listen(kestrel, metricsListen, o =>
                {
                    o.Protocols = HttpProtocols.Http1;
                    MetricsListener.Mark(o);
                });
            }

            if (config.Grpc is { Enabled: true, WebListen.Value: var webListen })
            {
                // grpc.web_listen: the management API for grpc-web over HTTP/1.1 (a browser's protocol). NOTE: a port
                // of its own because Kestrel serves cleartext HTTP/2 (gRPC's prior knowledge) only on an HTTP/2-only
                // endpoint. Added right before the API's own listener (Addresses(app)[^2])
                Listen(kestrel, webListen, o =>
                {
                    o.Protocols = HttpProtocols.Http1;
                    ManagementListener.Mark(o);
                });
            }

            if (config.Grpc.Enabled)
            {
                // the management API: its own listener, HTTP/2 without TLS (gRPC's prior knowledge; grpc-web over
                // HTTP/2 too); added last, so Addresses(app)[^1] is its address
                Listen(kestrel, config.Grpc.Listen, o =>
                {
                    o.Protocols = HttpProtocols.Http2;
                    ManagementListener.Mark(o);
                });
            }
        });
        builder.Services.Configure<HostOptions>(host =>
            host.ShutdownTimeout = TimeSpan.FromMilliseconds(config.Server.ShutdownTimeoutMs));

        var loggingSwitch = new LoggingSwitch(config.Logging);
        ConfigureLogging(builder.Logging, loggingSwitch);
        options.ConfigureLogging?.Invoke(builder.Logging);

        builder.Services.AddSingleton(loggingSwitch);
        if (options.TimeProvider is not null)
        {
            // registered first: AddCcRelay only adds TimeProvider.System when none is
            builder.Services.AddSingleton(options.TimeProvider);
        }

        builder.Services.AddCcRelay(relay =>
        {
            relay.Config = config;
            relay.ConfigPath = options.ConfigPath;
            relay.ConfigSource = options.ConfigSource;
            relay.ReloadOnSighup = options.ConfigPath is not null;
            relay.WatchConfig = options.WatchConfig;
            relay.Overrides = options.Overrides;
            relay.Environment = options.Environment ?? relay.Environment;
            relay.AccountingInterval = options.AccountingInterval ?? relay.AccountingInterval;
            relay.PingInterval = options.PingInterval;
        });

        if (config.Grpc.Enabled)
        {
            builder.Services.AddCcRelayManagement();
        }

        if (options.ReturnIdleMemory)
        {
            builder.Services.AddHostedService<IdleMemoryReturner>();
        }

        var app = builder.Build();
        app.UseEdgeGuard(
            app.Services.GetRequiredService<RelayState>(),
            app.Services.GetRequiredService<Routing.RuntimeCell>(),
            app.Services.GetRequiredService<AuditTrail>(),
            app.Services.GetRequiredService<TimeProvider>());
        if (certificate is not null)
        {
            certificate.Logger = app.Services.GetRequiredService<ILogger<CertificateHolder>>();
        }

        if (config.Grpc.Enabled)
        {
            app.UseManagementListener();
            app.UseCcRelayManagementWeb();
            app.MapCcRelayManagement();
        }

        if (config.Metrics.Enabled)
        {
            if (config.Metrics.Listen is null)
            {
                app.MapCcRelayMetrics(config.Metrics.Path);
            }
            else
            {
                app.UseMetricsListener(
                    config.Metrics.Path,
                    app.Services.GetRequiredService<PrometheusExposition>(),
                    app.Services.GetRequiredService<TimeProvider>());
            }
        }

        app.MapCcRelay(notFoundFallback: true);
        return app;
    }

    private static void Listen(KestrelServerOptions kestrel, ListenAddress address, Action<ListenOptions> configure)
    {
        if (string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.ListenLocalhost(address.Port, configure);
        }
        else
        {
            kestrel.Listen(IPAddress.Parse(address.Host), address.Port, configure);
        }
    }

    /// <summary>The addresses a started relay listens on (with the real port when 0 was asked for).</summary>
    public static IReadOnlyList<string> Addresses(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var feature = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>();
        return feature?.Addresses.ToArray() ?? [];
    }

    private static void ConfigureLogging(ILoggingBuilder logging, LoggingSwitch loggingSwitch)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(MsLogLevel.Trace);
        logging.AddFilter((provider, category, level) => loggingSwitch.Allows(provider, category, level));
        logging.AddConsole();
        logging.Services.AddSingleton<ILoggerProvider>(sp => new LogFile(loggingSwitch, sp.GetServices<ConsoleFormatter>()));
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z' ";
            o.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        // registered directly: AddConsoleFormatter<,> also binds the formatter's options to configuration, which
        // the trimmer cannot follow (IL2026/IL3050), and this formatter has no options
        logging.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ConsoleFormatter, JsonLineFormatter>());
        logging.Services.AddSingleton<IOptionsChangeTokenSource<ConsoleLoggerOptions>>(loggingSwitch);
        logging.Services.AddSingleton<IConfigureOptions<ConsoleLoggerOptions>>(new ConfigureOptions<ConsoleLoggerOptions>(loggingSwitch.Configure));
    }
}

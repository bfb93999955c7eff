using System.Net;
using CcRelay.Core;
using CcRelay.Host.Logging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
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
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null; // the relay enforces server.max_body_bytes itself
            var protocols = config.Server.EnableHttp2 ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1;
            var listen = config.Server.Listen;
            if (string.Equals(listen.Host, "localhost", StringComparison.OrdinalIgnoreCase))
            {
                kestrel.ListenLocalhost(listen.Port, o => o.Protocols = protocols);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(listen.Host), listen.Port, o => o.Protocols = protocols);
            }
        });
        builder.Services.Configure<HostOptions>(host =>
            host.ShutdownTimeout = TimeSpan.FromMilliseconds(config.Server.ShutdownTimeoutMs));

        var loggingSwitch = new LoggingSwitch(config.Logging);
        ConfigureLogging(builder.Logging, loggingSwitch);
        options.ConfigureLogging?.Invoke(builder.Logging);

        builder.Services.AddSingleton(loggingSwitch);
        builder.Services.AddCcRelay(relay =>
        {
            relay.Config = config;
            relay.ConfigPath = options.ConfigPath;
            relay.ConfigSource = options.ConfigSource;
            relay.ReloadOnSighup = options.ConfigPath is not null;
            relay.Overrides = options.Overrides;
        });

        var app = builder.Build();
        app.MapCcRelay(notFoundFallback: true);
        return app;
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
        logging.AddFilter((_, category, level) => loggingSwitch.Allows(category, level));
        logging.AddConsole();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z' ";
            o.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        logging.AddJsonConsole(o =>
        {
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
            o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
        });
        logging.Services.AddSingleton<IOptionsChangeTokenSource<ConsoleLoggerOptions>>(loggingSwitch);
        logging.Services.AddSingleton<IConfigureOptions<ConsoleLoggerOptions>>(new ConfigureOptions<ConsoleLoggerOptions>(loggingSwitch.Configure));
    }
}

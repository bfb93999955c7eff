using System.Net;
using CcRelay.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using CoreLogLevel = CcRelay.Core.LogLevel;
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

        ConfigureLogging(builder.Logging, config.Logging);
        options.ConfigureLogging?.Invoke(builder.Logging);

        builder.Services.AddCcRelay(relay =>
        {
            relay.Config = config;
            relay.ConfigPath = options.ConfigSource;
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

    private static void ConfigureLogging(ILoggingBuilder logging, LoggingConfig config)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(ToMicrosoft(config.Level));
        // the framework's own per-request chatter is noise next to the relay's one line per request
        logging.AddFilter("Microsoft", MsLogLevel.Warning);
        logging.AddFilter("System", MsLogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", MsLogLevel.Warning);

        var threshold = config.Output == "stderr" ? MsLogLevel.Trace : MsLogLevel.None;
        if (config.Format.IsJson)
        {
            logging.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
                o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
            });
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z' ";
                o.ColorBehavior = LoggerColorBehavior.Disabled;
            });
        }

        logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = threshold);
    }

    private static MsLogLevel ToMicrosoft(CoreLogLevel level) =>
        level.Tag switch
        {
            CoreLogLevel.Tags.Debug => MsLogLevel.Debug,
            CoreLogLevel.Tags.Warn => MsLogLevel.Warning,
            CoreLogLevel.Tags.Error => MsLogLevel.Error,
            _ => MsLogLevel.Information,
        };
}

using CcRelay.Core;
using CcRelay.Host;
using Microsoft.Extensions.Hosting;
using Microsoft.FSharp.Collections;

namespace CcRelay.Bench.RelayHost;

/// <summary>
/// <c>bench-relay-host --listen 127.0.0.1:P --upstream http://127.0.0.1:U</c>: the benchmark config of bench/run.sh
/// (one <c>anthropic_compatible</c> provider "fake" with key "bench-key", logging warn), built in code and served
/// through <see cref="CcRelayServer.Build"/> exactly as <c>cc-relay serve</c> does after loading a config file.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var listen = Arg(args, "--listen") ?? "127.0.0.1:8787";
        var upstream = Arg(args, "--upstream") ?? throw new ArgumentException("--upstream is required");

        var parsed = ListenAddress.TryParse(listen);
        if (parsed.IsError)
        {
            await Console.Error.WriteLineAsync(parsed.ErrorValue);
            return 2;
        }

        var d = Config.defaultServer;
        var server = new ServerConfig(parsed.ResultValue, d.Auth, d.TimeoutMs, d.MaxConcurrent, d.MaxBodyBytes, d.EnableHttp2, d.FirstByteTimeoutMs, d.ShutdownTimeoutMs);
        var p = Config.defaultProvider("fake", ProviderType.AnthropicCompatible, new Uri(upstream));
        var provider = new ProviderConfig(
            p.Name, p.Type, p.Enabled, p.BaseUrl, p.AuthStyle,
            ListModule.OfSeq([new KeyConfig("bench-key", 0, 0, 0, 0, 0, 1)]),
            p.ModelMapping, p.Models);
        var logging = new LoggingConfig(CcRelay.Core.LogLevel.Warn, Config.defaultLogging.Format, Config.defaultLogging.Output);
        var config = new RelayConfig(server, ListModule.OfSeq([provider]), logging);

        var app = CcRelayServer.Build(config, new CcRelayServerOptions { ConfigSource = "bench/RelayHost (in-code benchmark config)" });
        await app.StartAsync();
        Console.WriteLine($"bench-relay-host: 1 enabled provider(s): fake -> {upstream}; listening on {string.Join(", ", CcRelayServer.Addresses(app))}");
        await app.WaitForShutdownAsync();
        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}

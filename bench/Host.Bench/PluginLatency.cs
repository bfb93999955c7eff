using System.Globalization;
using System.Text;
using CcRelay.Core;
using CcRelay.Host.Plugins;
using Microsoft.FSharp.Collections;

namespace CcRelay.Host.Bench;

/// <summary>
/// <c>dotnet run -c Release --project bench/Host.Bench -- plugin-latency [calls]</c>: the added latency of a plugin
/// round trip (request line out, answer line in, through <see cref="PluginHost"/>), p50/p99 over a bounded loop
/// (at most <c>calls</c> calls, default 500, and 60 s per plugin) against the example plugins: one request call
/// (kind <c>request</c>) and one stream-event call (kind <c>event</c>, a ~150-byte <c>content_block_delta</c>:
/// what a stream plugin adds to each event it is given, before the event is written and flushed).
/// </summary>
public static class PluginLatency
{
    public static async Task<int> RunAsync(string[] args)
    {
        var calls = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 500;
        var repo = FindRepo();
        var body = Encoding.UTF8.GetBytes(File.ReadAllText(Path.Combine(repo, "bench", "payloads", "messages.template.json"))
            .Replace("__STREAM__", "true", StringComparison.Ordinal)
            .Replace("__BENCH__", "cc-bench:deltas=3", StringComparison.Ordinal));
        var time = TimeProvider.System;
        using var host = new PluginHost(time);
        Console.WriteLine($"body {body.Length} bytes; sandboxed (prlimit): {host.Sandboxed}; {calls} calls per plugin after 20 warm-up calls");
        foreach (var (name, command, script) in new[]
        {
            ("python redact_emails", "/usr/bin/python3", Path.Combine(repo, "examples", "plugins", "python", "redact_emails.py")),
            ("node token_budget", "/usr/bin/node", Path.Combine(repo, "examples", "plugins", "javascript", "token_budget.mjs")),
        })
        {
            var kinds = ListModule.OfSeq([PluginKind.Request, PluginKind.Response, PluginKind.Event]);
            var config = new PluginConfig(name, command, ListModule.OfSeq([script]), FSharpList<Tuple<string, string>>.Empty, 5_000, 2048, 600, OnError.Skip, kinds, 5_000);
            foreach (var (kind, call) in new[]
            {
                ("request", PluginCall.NewRequest("p", "m", body)),
                ("event", PluginCall.NewEvent("p", "m", "bench", 0, "content_block_delta", EventData)),
            })
            {
                if (await MeasureAsync(host, config, call, calls, time) is not { } samples)
                {
                    return 1;
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name} {kind}: n={samples.Count} p50={Percentile(samples, 0.50):F3} ms p99={Percentile(samples, 0.99):F3} ms max={samples[^1]:F3} ms"));
            }
        }

        return 0;
    }

    /// <summary>A text delta with an address in it: the Python example changes it, the Node one answers unchanged.</summary>
    private static readonly byte[] EventData = Encoding.UTF8.GetBytes(
        """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sure, I will write to bob@example.com about the release notes today."}}""");

    /// <summary>Round trips of <paramref name="calls"/> calls after 20 warm-up calls, sorted; null when one failed.</summary>
    private static async Task<List<double>?> MeasureAsync(PluginHost host, PluginConfig config, PluginCall call, int calls, TimeProvider time)
    {
        for (var i = 0; i < 20; i++)
        {
            await host.CallAsync(config, call, CancellationToken.None);
        }

        var samples = new List<double>(calls);
        var deadline = time.GetTimestamp();
        for (var i = 0; i < calls && time.GetElapsedTime(deadline) < TimeSpan.FromSeconds(60); i++)
        {
            var started = time.GetTimestamp();
            var outcome = await host.CallAsync(config, call, CancellationToken.None);
            samples.Add(time.GetElapsedTime(started).TotalMilliseconds);
            if (outcome.IsFailed)
            {
                Console.WriteLine($"{config.Name}: call failed: {((StepOutcome.Failed)outcome).Reason}");
                return null;
            }
        }

        samples.Sort();
        return samples;
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static string FindRepo()
    {
        var dir = new DirectoryInfo(Environment.CurrentDirectory);
        while (dir is not null && !Directory.Exists(Path.Combine(dir.FullName, "examples", "plugins")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("run from inside the repository");
    }
}

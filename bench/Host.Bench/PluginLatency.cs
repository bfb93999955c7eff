using System.Globalization;
using System.Text;
using CcRelay.Core;
using CcRelay.Host.Plugins;
using Microsoft.FSharp.Collections;

namespace CcRelay.Host.Bench;

/// <summary>
/// <c>dotnet run -c Release --project bench/Host.Bench -- plugin-latency [calls]</c>: the added latency of a plugin
/// round trip (request line out, answer line in, through <see cref="PluginHost"/>), p50/p99 over a bounded loop
/// (at most <c>calls</c> calls, default 500, and 60 s per plugin) against the example plugins.
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
            var config = new PluginConfig(name, command, ListModule.OfSeq([script]), FSharpList<Tuple<string, string>>.Empty, 5_000, 2048, 600, OnError.Skip);
            for (var i = 0; i < 20; i++)
            {
                await host.CallAsync(config, "p", "m", body, CancellationToken.None);
            }

            var samples = new List<double>(calls);
            var deadline = time.GetTimestamp();
            for (var i = 0; i < calls && time.GetElapsedTime(deadline) < TimeSpan.FromSeconds(60); i++)
            {
                var started = time.GetTimestamp();
                var outcome = await host.CallAsync(config, "p", "m", body, CancellationToken.None);
                samples.Add(time.GetElapsedTime(started).TotalMilliseconds);
                if (outcome.IsFailed)
                {
                    Console.WriteLine($"{name}: call failed: {((StepOutcome.Failed)outcome).Reason}");
                    return 1;
                }
            }

            samples.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name}: n={samples.Count} p50={Percentile(samples, 0.50):F3} ms p99={Percentile(samples, 0.99):F3} ms max={samples[^1]:F3} ms"));
        }

        return 0;
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

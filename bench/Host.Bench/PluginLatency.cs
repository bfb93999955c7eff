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
/// <para>
/// Then the concurrent variant: <c>--streams S</c> (default 16) streams at once, each sending its events one after the
/// other (as a relayed stream does), <c>calls</c> events in all, through the example plugins and a slow plugin that
/// sleeps <c>--slow-ms</c> (default 20) per call (a plugin that waits on something, not the CPU): the per-event
/// latency p50/p99 and each stream's wall time, with <c>processes</c> 1, 4 and 16 side by side in the same run
/// (docs/plugins.md "Processes"). One process serving every stream shows as an event waiting behind the other
/// streams' calls.
/// </para>
/// </summary>
public static class PluginLatency
{
    public static async Task<int> RunAsync(string[] args)
    {
        var calls = args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal) ? int.Parse(args[1], CultureInfo.InvariantCulture) : 500;
        var streams = Option(args, "--streams", 16);
        var slowMs = Option(args, "--slow-ms", 20);
        var repo = FindRepo();
        var body = Encoding.UTF8.GetBytes(File.ReadAllText(Path.Combine(repo, "bench", "payloads", "messages.template.json"))
            .Replace("__STREAM__", "true", StringComparison.Ordinal)
            .Replace("__BENCH__", "cc-bench:deltas=3", StringComparison.Ordinal));
        var time = TimeProvider.System;
        using var host = new PluginHost(time);
        Console.WriteLine($"body {body.Length} bytes; sandboxed (prlimit): {host.Sandboxed}; {calls} calls per plugin after 20 warm-up calls");
        var plugins = new[]
        {
            ("python redact_emails", "/usr/bin/python3", Path.Combine(repo, "examples", "plugins", "python", "redact_emails.py")),
            ("node token_budget", "/usr/bin/node", Path.Combine(repo, "examples", "plugins", "javascript", "token_budget.mjs")),
        };
        foreach (var (name, command, script) in plugins)
        {
            var config = Config(name, command, script, PluginPool.DefaultProcesses);
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

        // the concurrent variant: S streams at once, each one's events in sequence
        var slow = Path.Combine(Path.GetTempPath(), $"ccrelay-bench-slow-{Environment.ProcessId}.py");
        await File.WriteAllTextAsync(slow, SlowPlugin(slowMs));
        try
        {
            Console.WriteLine($"concurrent: {streams} streams at once, {calls} events in all ({Math.Max(1, calls / streams)} per stream, each after the previous one's answer)");
            foreach (var (name, command, script) in plugins.Append(($"python sleeps {slowMs} ms", "/usr/bin/python3", slow)))
                foreach (var processes in new[] { 1, 4, 16 })
                {
                    var config = Config(name, command, script, processes);
                    var (events, walls) = await ConcurrentAsync(host, config, streams, Math.Max(1, calls / streams), time);
                    if (events is null || walls is null)
                    {
                        return 1;
                    }

                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{name} processes={processes} concurrent event: n={events.Count} p50={Percentile(events, 0.50):F3} ms p99={Percentile(events, 0.99):F3} ms max={events[^1]:F3} ms; per-stream wall p50={Percentile(walls, 0.50):F1} ms max={walls[^1]:F1} ms"));
                }
        }
        finally
        {
            File.Delete(slow);
        }

        return 0;
    }

    private static PluginConfig Config(string name, string command, string script, int processes)
    {
        var kinds = ListModule.OfSeq([PluginKind.Request, PluginKind.Response, PluginKind.Event]);
        return new PluginConfig(name, command, ListModule.OfSeq([script]), FSharpList<Tuple<string, string>>.Empty, 5_000, 2048, 600, OnError.Skip, kinds, 5_000, processes);
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    /// <summary>A plugin that sleeps <paramref name="ms"/> per call, then answers <c>unchanged</c>.</summary>
    private static string SlowPlugin(int ms) => $$"""
        import json, sys, time
        for line in sys.stdin:
            r = json.loads(line)
            time.sleep({{ms}} / 1000)
            print(json.dumps({'v': r['v'], 'id': r['id'], 'unchanged': True}), flush=True)
        """;

    /// <summary>
    /// <paramref name="streams"/> streams at once, each making <paramref name="perStream"/> event calls in sequence
    /// (after one warm-up call per stream, all at once, that starts what the host starts); the event latencies and
    /// each stream's wall time, sorted; null when a call failed.
    /// </summary>
    private static async Task<(List<double>? Events, List<double>? Walls)> ConcurrentAsync(PluginHost host, PluginConfig config, int streams, int perStream, TimeProvider time)
    {
        var failed = 0;
        async Task<(List<double>, double)> StreamAsync(int stream, int events)
        {
            var samples = new List<double>(events);
            var began = time.GetTimestamp();
            for (var i = 0; i < events; i++)
            {
                var call = PluginCall.NewEvent("p", "m", "bench-" + stream.ToString(CultureInfo.InvariantCulture), i, "content_block_delta", EventData);
                var started = time.GetTimestamp();
                var outcome = await host.CallAsync(config, call, CancellationToken.None);
                samples.Add(time.GetElapsedTime(started).TotalMilliseconds);
                if (outcome is StepOutcome.Failed f)
                {
                    Console.WriteLine($"{config.Name}: call failed: {f.Reason}");
                    Interlocked.Increment(ref failed);
                }
            }

            return (samples, time.GetElapsedTime(began).TotalMilliseconds);
        }

        await Task.WhenAll(Enumerable.Range(0, streams).Select(s => Task.Run(() => StreamAsync(s, 1))));
        var results = await Task.WhenAll(Enumerable.Range(0, streams).Select(s => Task.Run(() => StreamAsync(s, perStream))));
        if (failed > 0)
        {
            return (null, null);
        }

        var all = results.SelectMany(r => r.Item1).Order().ToList();
        var walls = results.Select(r => r.Item2).Order().ToList();
        return (all, walls);
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

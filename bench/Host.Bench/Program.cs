using BenchmarkDotNet.Running;

if (args.Length > 0 && args[0] == "plugin-latency")
{
    return await CcRelay.Host.Bench.PluginLatency.RunAsync(args);
}

BenchmarkSwitcher.FromAssembly(typeof(CcRelay.Host.Bench.RequestLineBenchmarks).Assembly).Run(args);
return 0;

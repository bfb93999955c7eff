using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(CcRelay.Host.Bench.RequestLineBenchmarks).Assembly).Run(args);

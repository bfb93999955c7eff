using CcRelay.Host.Metrics;

namespace CcRelay.Host.Tests.Metrics;

/// <summary>
/// The per-processor series (<see cref="Stripes"/>) lose nothing under concurrent recording, and a histogram
/// snapshot taken while threads record is always one set of observations: its sum matches its count.
/// </summary>
public sealed class StripedSeriesTests
{
    private const int Threads = 8;
    private const int PerThread = 100_000;

    [Fact]
    public void SumSeries_ConcurrentAdds_AreAllCounted()
    {
        // Arrange
        var integers = new SumSeries("");
        var fractions = new SumSeries("");

        // Act: threads on every processor add at once (and move between processors as they are scheduled)
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, _ =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                integers.Add(1L);
                fractions.Add(0.5);
            }
        });

        // Assert
        Assert.Equal((Threads * PerThread).ToString(System.Globalization.CultureInfo.InvariantCulture), integers.Render());
        Assert.Equal((Threads * PerThread / 2).ToString(System.Globalization.CultureInfo.InvariantCulture), fractions.Render());
    }

    [Fact]
    public void SumSeries_UpAndDown_EndsWhereItStarted()
    {
        var inflight = new SumSeries("");

        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, _ =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                inflight.Add(1L);
                inflight.Add(-1L);
            }
        });

        Assert.Equal("0", inflight.Render());
    }

    [Fact]
    public void HistogramSeries_SnapshotsWhileRecording_AreConsistent_AndTheEndIsExact()
    {
        // Arrange: every observation is 1.0, in the second bucket, so a consistent snapshot has sum == count
        var histogram = new HistogramSeries("", [0.5, 2, 10]);
        var stop = false;
        var taken = 0;
        Exception? failed = null;
        using var first = new ManualResetEventSlim();
        var snapshots = new Thread(() =>
        {
            try
            {
                long last = 0;
                while (!Volatile.Read(ref stop))
                {
                    var (cumulative, sum) = histogram.Snapshot();
                    Assert.Equal(cumulative[^1], (long)sum);
                    Assert.Equal(0, cumulative[0]);
                    Assert.Equal(cumulative[^1], cumulative[1]);
                    Assert.True(cumulative[^1] >= last, "counts never go back");
                    last = cumulative[^1];
                    taken++;
                    first.Set();
                }
            }
            catch (Exception e)
            {
                failed = e;
                first.Set();
            }
        });

        // Act: record on many threads while another one snapshots
        snapshots.Start();
        first.Wait();
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, _ =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                histogram.Add(1.0);
            }
        });
        Volatile.Write(ref stop, true);
        snapshots.Join();

        // Assert
        Assert.Null(failed);
        var (final, total) = histogram.Snapshot();
        Assert.Equal([0L, Threads * PerThread, Threads * PerThread, Threads * PerThread], final);
        Assert.Equal(Threads * PerThread, total);
        Assert.True(taken > 1);
    }
}

namespace CcRelay.Host.Metrics;

/// <summary>The Prometheus metric types the exposition writes.</summary>
internal enum MetricType
{
    /// <summary>Monotonic total; samples are named <c>…_total</c>.</summary>
    Counter,

    /// <summary>A value that goes up and down (up-down counters, gauges).</summary>
    Gauge,

    /// <summary>Cumulative buckets, sum and count.</summary>
    Histogram,
}

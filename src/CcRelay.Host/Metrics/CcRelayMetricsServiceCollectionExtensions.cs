using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CcRelay.Host.Metrics;

/// <summary>Registers the relay's metrics.</summary>
public static class CcRelayMetricsServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="RelayMetrics"/>, <see cref="ProcessMetrics"/> and a <see cref="PrometheusExposition"/>
    /// over both, as singletons on the container's <see cref="IMeterFactory"/>. The model-label limit is
    /// <paramref name="maxModelLabels"/>, else <c>metrics.max_model_labels</c> of the registered
    /// <see cref="CcRelayOptions"/>, else 100. Calling it twice registers nothing new.
    /// </summary>
    public static IServiceCollection AddCcRelayMetrics(this IServiceCollection services, int? maxModelLabels = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddMetrics();
        services.TryAddSingleton(sp => new RelayMetrics(
            sp.GetRequiredService<IMeterFactory>(),
            maxModelLabels ?? sp.GetService<CcRelayOptions>()?.Config.Metrics.MaxModelLabels ?? 100));
        services.TryAddSingleton(sp => new ProcessMetrics(sp.GetRequiredService<IMeterFactory>()));
        services.TryAddSingleton(sp => new PrometheusExposition(
            sp.GetRequiredService<RelayMetrics>().Meter,
            sp.GetRequiredService<ProcessMetrics>().Meter));
        return services;
    }
}

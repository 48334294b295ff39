using System;

namespace Optim;

/// <summary>
/// A load that has been validated and staged but not applied: <see cref="Commit"/> applies it (and cannot fail),
/// <see cref="Abandon"/> frees what was staged. Exactly one of them is called, once.
/// </summary>
internal sealed class StagedLoad(Action commit, Action? abandon = null)
{
    private bool _done;

    /// <summary>Applies the staged state.</summary>
    public void Commit()
    {
        if (_done) throw new InvalidOperationException("the staged load was already committed or abandoned.");
        _done = true;
        commit();
    }

    /// <summary>Frees the staged state without applying it; a no-op after <see cref="Commit"/>.</summary>
    public void Abandon()
    {
        if (_done) return;
        _done = true;
        abandon?.Invoke();
    }
}

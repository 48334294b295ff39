using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using static TorchSharp.torch;

namespace Optim.Formats.PyTorch;

/// <summary>
/// Maps an <see cref="OptimizerStateDict"/> to PyTorch's <c>optimizer.state_dict()</c> and back. Names differ in a few
/// places: Optim's <c>beta1</c>/<c>beta2</c> are PyTorch's <c>betas</c> tuple, Adafactor's <c>eps1</c>/<c>eps2</c> its
/// <c>eps</c> tuple, <c>implementation</c> is PyTorch's <c>foreach</c>/<c>fused</c> pair, and PyTorch's groups carry
/// flags Optim has no use for (<c>capturable</c>, <c>differentiable</c>; Adam's <c>decoupled_weight_decay</c>, which
/// tells Adam from AdamW). LBFGS keeps its optimizer-wide state in the state of its first parameter, as PyTorch does.
/// Muon's <c>ns_coefficients</c> is PyTorch's tuple, SparseAdam's <c>step</c> its Python int, and a group's parameter
/// names (an optimizer built from named parameters) PyTorch 2.x's <c>param_names</c>.
/// </summary>
internal static class OptimizerLayout
{
    private static readonly HashSet<string> Fused = ["SGD", "SGDMomentumNesterov", "Adam", "AdamW", "Adagrad"];
    private static readonly HashSet<string> NoCapturable = ["SGD", "SGDMomentumNesterov", "Adagrad", "Adafactor", "LBFGS", "SparseAdam", "Muon"];
    private static readonly HashSet<string> NoDifferentiable = ["Adafactor", "LBFGS", "SparseAdam", "Muon"];

    // ---- Optim -> PyTorch ----

    /// <summary>PyTorch's state dict for <paramref name="stateDict"/>: its tensors are the dict's own (not copied).</summary>
    public static PyDict ToPyTorch(OptimizerStateDict stateDict)
    {
        var type = stateDict.OptimizerType;
        var state = new PyDict();
        if (type == "LBFGS")
        {
            if (stateDict.Global.Count > 0)
            {
                var first = new PyDict();
                var historySize = System.Convert.ToInt32(stateDict.ParamGroups[0]["history_size"], CultureInfo.InvariantCulture);
                foreach (var (key, value) in stateDict.Global) first.Set(key, GlobalToPyTorch(key, value, historySize));
                state.Set(0L, first);
            }
        }
        else
        {
            foreach (var (id, entries) in stateDict.State)
            {
                var s = new PyDict();
                foreach (var (key, tensor) in entries)
                {
                    // PyTorch's SparseAdam counts in a Python int (its bias corrections raise floats to it); a tensor
                    // there would have PyTorch compute them in float32.
                    if (type == "SparseAdam" && key == StateKeys.Step) s.Set(key, (long)StateTensors.Value(tensor));
                    else s.Set(key, tensor);
                }
                state.Set((long)id, s);
            }
        }
        var groups = new List<object?>();
        for (var g = 0; g < stateDict.ParamGroups.Count; g++)
        {
            var group = stateDict.ParamGroups[g];
            var py = new PyDict();
            var values = group.Hyperparameters.ToDictionary(e => e.Key, e => e.Value);
            foreach (var (name, value) in group.Hyperparameters)
            {
                switch (name)
                {
                    case "beta1":
                        py.Set("betas", PyTuple.Of(value, values["beta2"]));
                        break;
                    case "eps1" when values.ContainsKey("eps2"):
                        py.Set("eps", PyTuple.Of(value, values["eps2"]));
                        break;
                    case "beta2":
                    case "eps2" when values.ContainsKey("eps1"):
                        break;
                    case "implementation":
                        var implementation = (Implementation)value!;
                        py.Set("foreach", implementation switch { Implementation.Foreach => true, Implementation.ForLoop => false, _ => null });
                        if (Fused.Contains(type)) py.Set("fused", implementation == Implementation.Fused ? true : null);
                        // PyTorch's groups of the others have no fused key. Optim's C# fused kernel for them is written as
                        // fused=True, which PyTorch keeps and ignores: the choice survives a round trip, and the other
                        // paths' files stay exactly PyTorch's.
                        else if (implementation == Implementation.Fused) py.Set("fused", true);
                        break;
                    default:
                        py.Set(name, ToPython(value));
                        break;
                }
            }
            if (!NoCapturable.Contains(type)) py.Set("capturable", false);
            if (!NoDifferentiable.Contains(type)) py.Set("differentiable", false);
            if (type is "Adam" or "AdamW") py.Set("decoupled_weight_decay", type == "AdamW");
            py.Set("initial_lr", group.InitialLr);
            py.Set("params", group.Params.Select(p => (object?)(long)p).ToList());
            // PyTorch 2.x's param_names, when the optimizer was built from named parameters.
            if (group.ParamNames is { } names) py.Set("param_names", names.Select(n => (object?)n).ToList());
            groups.Add(py);
        }
        var root = new PyDict();
        root.Set("state", state);
        root.Set("param_groups", groups);
        return root;
    }

    private static object? ToPython(object? value) => value switch
    {
        int i => (long)i,
        (double a, double b) => PyTuple.Of(a, b),
        // The one list hyperparameter, Muon's ns_coefficients, is a tuple in PyTorch.
        IReadOnlyList<double> list => PyTuple.Of(list.Select(x => (object?)x).ToArray()),
        Enum e => e.ToString(),
        _ => value,
    };

    // PyTorch's LBFGS keeps `al` as a list of history_size entries that it fills before reading.
    private static object? GlobalToPyTorch(string key, object value, int historySize) => value switch
    {
        IReadOnlyList<Tensor> list when key == "al" => list.Select(t => (object?)t).Concat(Enumerable.Repeat<object?>(null, Math.Max(0, historySize - list.Count))).ToList(),
        IReadOnlyList<Tensor> list => list.Select(t => (object?)t).ToList(),
        int i => (long)i,
        _ => value,
    };

    // ---- PyTorch -> Optim ----

    /// <summary>
    /// The <see cref="OptimizerStateDict"/> that <paramref name="root"/> (PyTorch's <c>optimizer.state_dict()</c>) holds
    /// for <paramref name="optimizer"/>, whose current state dict tells the algorithm's names and types. Its tensors are
    /// those of the loaded file plus new 0-dim <c>step</c>s where the file has plain numbers (listed in <paramref name="made"/>).
    /// </summary>
    /// <exception cref="ArgumentException">Not an optimizer state dict, or one of another algorithm or layout.</exception>
    public static OptimizerStateDict FromPyTorch(object? root, Optimizer optimizer, List<Tensor> made)
    {
        if (root is not PyDict dict || !dict.TryGetValue("state", out var stateValue) || !dict.TryGetValue("param_groups", out var groupsValue)
            || stateValue is not PyDict state || groupsValue is not List<object?> groups)
            throw Invalid("the checkpoint does not hold an optimizer's state_dict() (a dict of 'state' and 'param_groups').");
        if (dict.Count != 2) throw Invalid($"the optimizer state dict has entries besides 'state' and 'param_groups': {string.Join(", ", dict.Entries.Select(e => e.Key).Where(k => k is not ("state" or "param_groups")))}.");
        // The current layout only (types, names, groups): no state-dict hooks run for it.
        var current = optimizer.StateDictCore();
        var type = current.OptimizerType;
        var schema = AlgorithmCatalog.Of(optimizer)?.Schema;
        if (groups.Count != current.ParamGroups.Count)
            throw Invalid($"loaded state dict has a different number of parameter groups ({groups.Count}; the {type} has {current.ParamGroups.Count})");

        var paramGroups = new List<ParamGroupState>();
        for (var g = 0; g < groups.Count; g++)
        {
            if (groups[g] is not PyDict group) throw Invalid($"param_groups[{g}] is a {PyValues.TypeName(groups[g])}, not a dict.");
            paramGroups.Add(GroupFromPyTorch(group, g, type, current.ParamGroups[g], schema));
        }

        var perParameter = new Dictionary<int, IReadOnlyDictionary<string, Tensor>>();
        var global = new Dictionary<string, object>();
        foreach (var (key, value) in state.Entries)
        {
            if (key is not long id || id < 0 || id > int.MaxValue) throw Invalid($"the state dict's state has a key {Repr(key)}, not a parameter id.");
            if (value is not PyDict entries) throw Invalid($"the state of parameter id {id} is a {PyValues.TypeName(value)}, not a dict.");
            if (type == "LBFGS")
            {
                if (id != 0 && entries.Count > 0) throw Invalid($"LBFGS keeps its state under the first parameter (id 0), not id {id}.");
                foreach (var (k, v) in entries.Entries) global[(string)k] = GlobalFromPyTorch((string)k, v, made);
                continue;
            }
            var s = new Dictionary<string, Tensor>();
            foreach (var (k, v) in entries.Entries)
            {
                if (k is not string name) throw Invalid($"the state of parameter id {id} has a key {Repr(k)}, not a name.");
                switch (v)
                {
                    case null: // PyTorch 1.x's SGD stored momentum_buffer None without momentum
                        break;
                    case Tensor t:
                        s[name] = t;
                        break;
                    case long or double when PyValues.TryDouble(v, out var number):
                        // PyTorch before 2.0 kept some steps as plain numbers; 2.x turns them into float32 0-dim tensors.
                        var scalar = tensor(number, ScalarType.Float32);
                        made.Add(scalar);
                        s[name] = scalar;
                        break;
                    default:
                        throw Invalid($"state '{name}' of parameter id {id} is a {PyValues.TypeName(v)}, not a tensor or a number.");
                }
            }
            if (s.Count > 0) perParameter[(int)id] = s;
        }
        return new OptimizerStateDict(type, perParameter, paramGroups) { Global = global };
    }

    private static ParamGroupState GroupFromPyTorch(PyDict group, int g, string type, ParamGroupState current, OptionSchema? schema)
    {
        var known = current.Hyperparameters.ToDictionary(e => e.Key, e => e.Value);
        var values = new List<KeyValuePair<string, object?>>();
        double? initialLr = null;
        IReadOnlyList<int>? ids = null;
        IReadOnlyList<string>? paramNames = null;
        bool? foreach_ = null, fused = null;
        if (!group.ContainsKey("lr")) throw Invalid($"param_groups[{g}] has no 'lr'.");
        foreach (var (k, value) in group.Entries)
        {
            if (k is not string key) throw Invalid($"param_groups[{g}] has a key {Repr(k)}, not a name.");
            string Where() => $"param_groups[{g}]['{key}']";
            switch (key)
            {
                case "params":
                    ids = Ids(value, Where());
                    break;
                case "param_names":
                    if (PyValues.Sequence(value) is not { } names || names.Any(n => n is not string))
                        throw Invalid($"{Where()} is not a list of names.");
                    paramNames = names.Cast<string>().ToList();
                    break;
                case "initial_lr":
                    initialLr = Number(value, Where());
                    break;
                case "foreach" when known.ContainsKey("implementation"):
                    foreach_ = OptionalBool(value, Where());
                    break;
                case "fused" when known.ContainsKey("implementation"):
                    fused = OptionalBool(value, Where());
                    break;
                case "capturable" or "differentiable":
                    // How PyTorch runs the same update (on device, under autograd): nothing to carry over.
                    if (value is not bool) throw Invalid($"{Where()} is a {PyValues.TypeName(value)}, not a bool.");
                    break;
                case "decoupled_weight_decay" when type is "Adam" or "AdamW":
                    if (value is not bool decoupled) throw Invalid($"{Where()} is a {PyValues.TypeName(value)}, not a bool.");
                    if (decoupled != (type == "AdamW"))
                        throw Invalid($"param_groups[{g}] has decoupled_weight_decay={(decoupled ? "True" : "False")}: a state dict of {(decoupled ? "AdamW" : "Adam")}, not of {type}.");
                    break;
                case "betas" when known.ContainsKey("beta1") && known.ContainsKey("beta2"):
                {
                    var (b1, b2) = Pair(value, Where());
                    values.Add(new("beta1", b1));
                    values.Add(new("beta2", b2));
                    break;
                }
                case "eps" when known.ContainsKey("eps1") && known.ContainsKey("eps2"):
                {
                    if (PyValues.Sequence(value) is not [var e1, var e2]) throw Invalid($"{Where()} is not a pair.");
                    values.Add(new("eps1", e1 is null ? null : Number(e1, Where())));
                    values.Add(new("eps2", Number(e2, Where())));
                    break;
                }
                default:
                    if (!known.TryGetValue(key, out var like) || key == "implementation")
                        throw Invalid($"param_groups[{g}] has '{key}', which {type} does not have: is it a state dict of another algorithm?");
                    values.Add(new(key, Convert(value, schema?.Find(key)?.ValueType ?? like?.GetType(), Where())));
                    break;
            }
        }
        if (ids is null) throw Invalid($"param_groups[{g}] has no 'params'.");
        if (known.ContainsKey("implementation"))
        {
            if (fused == true && foreach_ == true) throw Invalid($"param_groups[{g}] has both foreach and fused set.");
            values.Add(new("implementation", fused == true ? Implementation.Fused
                : foreach_ switch { true => Implementation.Foreach, false => Implementation.ForLoop, null => Implementation.Auto }));
        }
        // A group without initial_lr was never seen by a scheduler; its base rate is its rate (PyTorch's setdefault).
        return new ParamGroupState(values, initialLr ?? Number(group.TryGetValue("lr", out var lr) ? lr : null, $"param_groups[{g}]['lr']"), ids)
        {
            ParamNames = paramNames,
        };
    }

    // A value of the hyperparameter's declared type (PyTorch writes ints where floats belong, e.g. weight_decay=0).
    private static object? Convert(object? value, Type? type, string where)
    {
        if (type == typeof(double)) return Number(value, where);
        if (type == typeof(double?)) return value is null ? null : Number(value, where);
        if (type == typeof(bool)) return value is bool b ? b : throw Mismatch(value, "a bool", where);
        if (type == typeof(int)) return value is long l && l is >= int.MinValue and <= int.MaxValue ? (int)l : throw Mismatch(value, "an int", where);
        if (type == typeof(long)) return value is long l2 ? l2 : throw Mismatch(value, "an int", where);
        if (type == typeof(string)) return value is string or null ? value : throw Mismatch(value, "a str or None", where);
        if (type == typeof((double, double))) return Pair(value, where);
        if (type is not null && typeof(IReadOnlyList<double>).IsAssignableFrom(type))
            return PyValues.Sequence(value)?.Select(v => Number(v, where)).ToArray() ?? throw Mismatch(value, "a list of numbers", where);
        throw Mismatch(value, type?.Name ?? "a known type", where);
    }

    private static double Number(object? value, string where) =>
        PyValues.TryDouble(value, out var d) ? d : throw Mismatch(value, "a number", where);

    private static (double, double) Pair(object? value, string where) =>
        PyValues.Sequence(value) is [var a, var b] ? (Number(a, where), Number(b, where)) : throw Mismatch(value, "a pair of numbers", where);

    private static bool? OptionalBool(object? value, string where) => value switch
    {
        null => null,
        bool b => b,
        _ => throw Mismatch(value, "a bool or None", where),
    };

    private static List<int> Ids(object? value, string where)
    {
        if (PyValues.Sequence(value) is not { } items) throw Mismatch(value, "a list of parameter ids", where);
        return items.Select(i => i is long l && l is >= 0 and <= int.MaxValue ? (int)l : throw Mismatch(i, "a parameter id", where)).ToList();
    }

    private static ArgumentException Mismatch(object? value, string expected, string where) =>
        Invalid($"{where} is {Repr(value)}, not {expected}.");

    // The loaded file plays the part of LoadStateDict's argument, so errors name it the same way.
    private static readonly string StateDictArgument = "state_dict";

    private static ArgumentException Invalid(string message) => new(message, StateDictArgument);

    private static string Repr(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "True" : "False",
        _ => "a " + PyValues.TypeName(value),
    };

    // LBFGS's values: tensors, lists of tensors (PyTorch's `al` is history_size long, None until filled), numbers.
    private static object GlobalFromPyTorch(string key, object? value, List<Tensor> made)
    {
        switch (value)
        {
            case Tensor t when key is "t" or "H_diag" or "prev_loss" && t.numel() == 1:
                using (var d = t.to(ScalarType.Float64)) return d.item<double>();
            case Tensor t:
                return t;
            case long or double or bool or string:
                return value;
            case List<object?> list:
                return list.Select(item => item switch
                {
                    Tensor t => t,
                    null when key == "al" => Made(tensor(0.0, ScalarType.Float32)),
                    _ => throw Invalid($"LBFGS state '{key}' holds a {PyValues.TypeName(item)}, not a tensor."),
                }).ToList();
            default:
                throw Invalid($"LBFGS state '{key}' is a {PyValues.TypeName(value)}.");
        }

        Tensor Made(Tensor t)
        {
            made.Add(t);
            return t;
        }
    }
}

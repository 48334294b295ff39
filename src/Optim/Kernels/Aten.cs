using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Kernels;

/// <summary>
/// ATen ops TorchSharp does not bind, as typed C# methods: the <c>_foreach_*</c> kernels PyTorch's
/// <c>_multi_tensor_*</c> update functions are written with, and the Scalar overload of <c>lerp_</c>. An algorithm's
/// foreach path (<see cref="Optimizer{TOptions}"/>'s <c>MultiTensorStep</c>) calls them on the lists of a
/// <see cref="StepBatch"/>, one device and dtype at a time. On the CPU each foreach op runs tensor by tensor, so it gives
/// the same bits as the per-tensor op with the same double scalar: an algorithm whose two paths run the same ops in the
/// same order gets a foreach path that equals its for-loop bit for bit.
/// </summary>
/// <remarks>
/// <para>
/// Conventions: a name ending in <c>_</c> updates its first list in place (PyTorch's naming); the others return new tensors
/// owned by the caller, registered in the caller's current <see cref="DisposeScope"/> like any TorchSharp result
/// (outside a scope, dispose them). Scalars are doubles and reach ATen as PyTorch's Python floats do. Every tensor of a
/// list must be on one device with one dtype; lists that go together must have the same length (else
/// <see cref="ArgumentException"/>); a null list or element is an <see cref="ArgumentNullException"/>. Empty lists are a
/// no-op. Every call runs under <c>no_grad</c>.
/// </para>
/// <para>
/// Inside, one TorchScript unit is compiled once per process (lazily, thread-safely) and its functions are invoked: one
/// call per op, whatever the list length. TorchScript pitfalls handled here: floats arrive as double, <c>double[]</c> is
/// not accepted (per tensor scalars travel as a 1-D float64 CPU tensor; the script turns it into a <c>List[number]</c>,
/// because ATen's <c>Scalar[]</c> is <c>List[number]</c> and TorchScript lists are invariant, so a <c>List[float]</c> does
/// not match; ATen then gets the same double Scalars PyTorch's Python floats give it), a lone <c>Tensor[]</c> must be
/// boxed, invoking an undefined name crashes the process (only the names below are invoked), and disposing a unit does
/// not free it (we keep one forever). Editing the script: a type error in it (an unknown name, no matching overload)
/// aborts the process from inside <c>jit.compile</c> instead of throwing; <c>torch.jit.annotate</c> is not available,
/// annotated assignments are; the script must end with a newline (see <see cref="Compile"/>).
/// </para>
/// </remarks>
public static class Aten
{
    // Names ending in `_` mutate their first argument and return None.
    private const string Script = """
        def lerp_scalar_(self: Tensor, end: Tensor, weight: float):
            self.lerp_(end, weight)

        def scalar_list(scalars: Tensor) -> List[number]:
            values: List[float] = scalars.tolist()
            out: List[number] = []
            for v in values:
                out.append(v)
            return out

        def foreach_add_scalar_(self: List[Tensor], scalar: float):
            torch._foreach_add_(self, scalar)

        def foreach_add_scalar(self: List[Tensor], scalar: float) -> List[Tensor]:
            return torch._foreach_add(self, scalar)

        def foreach_add_list_(self: List[Tensor], other: List[Tensor], alpha: float):
            torch._foreach_add_(self, other, alpha=alpha)

        def foreach_add_list(self: List[Tensor], other: List[Tensor], alpha: float) -> List[Tensor]:
            return torch._foreach_add(self, other, alpha=alpha)

        def foreach_sub_list_(self: List[Tensor], other: List[Tensor], alpha: float):
            torch._foreach_sub_(self, other, alpha=alpha)

        def foreach_mul_scalar_(self: List[Tensor], scalar: float):
            torch._foreach_mul_(self, scalar)

        def foreach_mul_scalar(self: List[Tensor], scalar: float) -> List[Tensor]:
            return torch._foreach_mul(self, scalar)

        def foreach_mul_scalarlist_(self: List[Tensor], scalars: Tensor):
            torch._foreach_mul_(self, scalar_list(scalars))

        def foreach_mul_scalarlist(self: List[Tensor], scalars: Tensor) -> List[Tensor]:
            return torch._foreach_mul(self, scalar_list(scalars))

        def foreach_mul_list_(self: List[Tensor], other: List[Tensor]):
            torch._foreach_mul_(self, other)

        def foreach_div_scalar_(self: List[Tensor], scalar: float):
            torch._foreach_div_(self, scalar)

        def foreach_div_scalarlist_(self: List[Tensor], scalars: Tensor):
            torch._foreach_div_(self, scalar_list(scalars))

        def foreach_neg(self: List[Tensor]) -> List[Tensor]:
            return torch._foreach_neg(self)

        def foreach_neg_(self: List[Tensor]):
            torch._foreach_neg_(self)

        def foreach_lerp_scalar_(self: List[Tensor], end: List[Tensor], weight: float):
            torch._foreach_lerp_(self, end, weight)

        def foreach_addcmul_scalar_(self: List[Tensor], tensor1: List[Tensor], tensor2: List[Tensor], value: float):
            torch._foreach_addcmul_(self, tensor1, tensor2, value=value)

        def foreach_addcmul_scalar(self: List[Tensor], tensor1: List[Tensor], tensor2: List[Tensor], value: float) -> List[Tensor]:
            return torch._foreach_addcmul(self, tensor1, tensor2, value=value)

        def foreach_addcdiv_scalar_(self: List[Tensor], tensor1: List[Tensor], tensor2: List[Tensor], value: float):
            torch._foreach_addcdiv_(self, tensor1, tensor2, value=value)

        def foreach_addcdiv_scalarlist_(self: List[Tensor], tensor1: List[Tensor], tensor2: List[Tensor], scalars: Tensor):
            torch._foreach_addcdiv_(self, tensor1, tensor2, scalar_list(scalars))

        def foreach_sqrt(self: List[Tensor]) -> List[Tensor]:
            return torch._foreach_sqrt(self)

        def foreach_sqrt_(self: List[Tensor]):
            torch._foreach_sqrt_(self)

        def foreach_maximum_list_(self: List[Tensor], other: List[Tensor]):
            torch._foreach_maximum_(self, other)

        def foreach_zero_(self: List[Tensor]):
            torch._foreach_zero_(self)

        def foreach_copy_(self: List[Tensor], src: List[Tensor]):
            torch._foreach_copy_(self, src)

        def fused_adam_(self: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor],
                        max_exp_avg_sqs: List[Tensor], state_steps: List[Tensor], lr: float, beta1: float, beta2: float,
                        weight_decay: float, eps: float, amsgrad: bool, maximize: bool,
                        grad_scale: Optional[Tensor], found_inf: Optional[Tensor]):
            torch._fused_adam_(self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr=lr, beta1=beta1,
                               beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=amsgrad, maximize=maximize,
                               grad_scale=grad_scale, found_inf=found_inf)

        def fused_adamw_(self: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor],
                         max_exp_avg_sqs: List[Tensor], state_steps: List[Tensor], lr: float, beta1: float, beta2: float,
                         weight_decay: float, eps: float, amsgrad: bool, maximize: bool,
                         grad_scale: Optional[Tensor], found_inf: Optional[Tensor]):
            torch._fused_adamw_(self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr=lr, beta1=beta1,
                                beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=amsgrad, maximize=maximize,
                                grad_scale=grad_scale, found_inf=found_inf)

        def fused_sgd_(self: List[Tensor], grads: List[Tensor], momentum_buffer_list: List[Tensor], weight_decay: float,
                       momentum: float, lr: float, dampening: float, nesterov: bool, maximize: bool, is_first_step: bool,
                       grad_scale: Optional[Tensor], found_inf: Optional[Tensor]):
            torch._fused_sgd_(self, grads, momentum_buffer_list, weight_decay=weight_decay, momentum=momentum, lr=lr,
                              dampening=dampening, nesterov=nesterov, maximize=maximize, is_first_step=is_first_step,
                              grad_scale=grad_scale, found_inf=found_inf)

        def fused_adagrad_(self: List[Tensor], grads: List[Tensor], state_sums: List[Tensor], state_steps: List[Tensor],
                           lr: float, lr_decay: float, weight_decay: float, eps: float, maximize: bool,
                           grad_scale: Optional[Tensor], found_inf: Optional[Tensor]):
            torch._fused_adagrad_(self, grads, state_sums, state_steps, lr=lr, lr_decay=lr_decay,
                                  weight_decay=weight_decay, eps=eps, maximize=maximize, grad_scale=grad_scale,
                                  found_inf=found_inf)

        # ---- Adadelta/Adamax/ASGD ----
        def foreach_div_list_(self: List[Tensor], other: List[Tensor]):
            torch._foreach_div_(self, other)

        def foreach_sub_list(self: List[Tensor], other: List[Tensor], alpha: float) -> List[Tensor]:
            return torch._foreach_sub(self, other, alpha=alpha)

        def foreach_abs(self: List[Tensor]) -> List[Tensor]:
            return torch._foreach_abs(self)

        def foreach_abs_(self: List[Tensor]):
            torch._foreach_abs_(self)
        # ---- NAdam/RAdam/Rprop ----
        def foreach_add_scalarlist_(self: List[Tensor], scalars: Tensor):
            torch._foreach_add_(self, scalar_list(scalars))

        def foreach_mul_list(self: List[Tensor], other: List[Tensor]) -> List[Tensor]:
            return torch._foreach_mul(self, other)

        def foreach_reciprocal_(self: List[Tensor]):
            torch._foreach_reciprocal_(self)

        def foreach_sign_(self: List[Tensor]):
            torch._foreach_sign_(self)

        # set_ to itself changes nothing but counts as an in-place change: one op per tensor, where an empty view's
        # zero_ took three (view, narrow, zero_) in the interpreter.
        def mark_modified_(self: List[Tensor]):
            for t in self:
                t.set_(t)

        # ---- Muon (TorchSharp's addmm takes float32 beta and alpha) ----
        def addmm(self: Tensor, mat1: Tensor, mat2: Tensor, beta: float, alpha: float) -> Tensor:
            return torch.addmm(self, mat1, mat2, beta=beta, alpha=alpha)

        # ---- linalg.vector_norm with a Scalar ord kept alive by the caller (see VectorNorm) ----
        def vector_norm(self: Tensor, ord: float, keepdim: bool) -> Tensor:
            return torch.linalg_vector_norm(self, ord, None, keepdim)

        def vector_norm_dim(self: Tensor, ord: float, dim: int, keepdim: bool) -> Tensor:
            return torch.linalg_vector_norm(self, ord, [dim], keepdim)

        # ---- SparseAdam (TorchSharp binds neither coalesce, _values nor sparse_mask) ----
        def sparse_values(self: Tensor) -> Tensor:
            return self._values()

        def sparse_adam_(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, maximize: bool,
                         one_minus_beta1: float, one_minus_beta2: float, eps: float, step_size: float):
            if maximize:
                grad = -grad
            grad = grad.coalesce()
            grad_indices = grad._indices()
            grad_values = grad._values()
            if grad_values.numel() > 0:
                size = grad.size()
                old_exp_avg_values = exp_avg.sparse_mask(grad)._values()
                exp_avg_update_values = grad_values.sub(old_exp_avg_values).mul_(one_minus_beta1)
                exp_avg.add_(torch.sparse_coo_tensor(grad_indices, exp_avg_update_values, size))
                old_exp_avg_sq_values = exp_avg_sq.sparse_mask(grad)._values()
                exp_avg_sq_update_values = grad_values.pow(2).sub_(old_exp_avg_sq_values).mul_(one_minus_beta2)
                exp_avg_sq.add_(torch.sparse_coo_tensor(grad_indices, exp_avg_sq_update_values, size))
                numer = exp_avg_update_values.add_(old_exp_avg_values)
                exp_avg_sq_update_values.add_(old_exp_avg_sq_values)
                denom = exp_avg_sq_update_values.sqrt_().add_(eps)
                param.add_(torch.sparse_coo_tensor(grad_indices, numer.div_(denom).mul(-step_size), size))
        """;

    private static int _compilations;
    private static readonly Lazy<jit.CompilationUnit> Unit = new(Compile, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>How many times the unit was compiled in this process (tests check it is at most one).</summary>
    internal static int Compilations => Volatile.Read(ref _compilations);

    private static jit.CompilationUnit Compile()
    {
        Interlocked.Increment(ref _compilations);
        // TorchScript's C++ parser trips (an internal assert in parseAssign) on a final statement that spans lines
        // and ends without a newline; a raw string literal drops the last newline, so add it back.
        return jit.compile(Script + "\n" + AmpScript + "\n");
    }

    /// <summary>Runs a script function that returns None. Scalars are passed as <see cref="Scalar"/>s we dispose.</summary>
    private static void Invoke(string name, params object?[] args)
    {
        // Grad mode of the caller applies inside the unit; optimizer math never records graphs.
        using var _ = no_grad();
        try
        {
            Unit.Value.invoke(name, args!);
        }
        finally
        {
            DisposeScalars(args);
        }
    }

    /// <summary>Runs a script function that returns <c>List[Tensor]</c>; the result belongs to the caller.</summary>
    private static Tensor[] InvokeList(string name, params object?[] args)
    {
        using var _ = no_grad();
        try
        {
            // TorchSharp maps a returned List[Tensor] to Tensor[] (each wrapped with `new Tensor(handle)`, which
            // registers it in the current DisposeScope). Accept object[] too in case a version boxes the elements.
            return Unit.Value.invoke(name, args!) switch
            {
                Tensor[] tensors => tensors,
                object[] objects => objects.Cast<Tensor>().ToArray(),
                var other => throw new InvalidOperationException(
                    $"TorchScript function {name} returned {other?.GetType().Name ?? "null"}, expected a list of tensors."),
            };
        }
        finally
        {
            DisposeScalars(args);
        }
    }

    private static void DisposeScalars(object?[] args)
    {
        foreach (var arg in args)
        {
            if (arg is Scalar s) s.Dispose();
        }
    }

    // Every list argument passes here: a null list or element is an ArgumentNullException naming it, not an error from
    // inside the script.
    private static Tensor[] List(IReadOnlyList<Tensor> tensors, string name)
    {
        ArgumentNullException.ThrowIfNull(tensors, name);
        for (var i = 0; i < tensors.Count; i++)
        {
            if (tensors[i] is null) throw new ArgumentNullException(name, $"{name}[{i}] is null.");
        }
        return tensors as Tensor[] ?? tensors.ToArray();
    }

    private static bool IsEmpty(IReadOnlyList<Tensor> self, string name)
    {
        ArgumentNullException.ThrowIfNull(self, name);
        return self.Count == 0;
    }

    private static Scalar S(double value) => value.ToScalar();

    /// <summary>
    /// A Python list of floats, as a 1-D float64 CPU tensor the script turns back into a list (<c>scalar_list</c>): each
    /// value reaches ATen as the same double Scalar. The caller disposes it.
    /// </summary>
    private static Tensor ScalarList(IReadOnlyList<Tensor> self, IReadOnlyList<double> values, string name)
    {
        SameLength(self, values, name);
        return torch.tensor(values as double[] ?? values.ToArray(), ScalarType.Float64, CPU);
    }

    private static void SameLength<T>(IReadOnlyList<Tensor> self, IReadOnlyList<T> other, string name)
    {
        ArgumentNullException.ThrowIfNull(self, nameof(self));
        ArgumentNullException.ThrowIfNull(other, name);
        if (other.Count != self.Count)
            throw new ArgumentException($"Expected {self.Count} entries in {name} (one per tensor of self), got {other.Count}.", name);
    }

    /// <summary>
    /// <c>self.lerp_(end, weight)</c> with a Scalar weight, as PyTorch calls it. For float32/float64 a 0-dim weight
    /// tensor of the same dtype gives the same bits without the TorchScript call; for half precision it does not
    /// (the Scalar overload keeps the weight in float), so those go through the unit.
    /// </summary>
    /// <param name="self">The tensor to update.</param>
    /// <param name="end">The tensor to interpolate towards.</param>
    /// <param name="weight">The interpolation weight.</param>
    public static void Lerp_(Tensor self, Tensor end, double weight)
    {
        ArgumentNullException.ThrowIfNull(self);
        ArgumentNullException.ThrowIfNull(end);
        if (self.dtype is ScalarType.Float32 or ScalarType.Float64)
        {
            using var w = torch.tensor(weight, self.dtype, self.device);
            self.lerp_(end, w);
        }
        else
        {
            Invoke("lerp_scalar_", self, end, S(weight));
        }
    }

    // ---- _foreach_* (PyTorch's _multi_tensor_* paths). On CPU ATen runs them tensor by tensor: same bits as the
    // per-tensor ops with the same Scalars.

    /// <summary>
    /// <c>torch._foreach_add_(self, scalar)</c>. Also the step counter update: PyTorch adds
    /// <c>torch.tensor(1.0)</c> with <c>alpha=1.0</c> to CPU steps for speed, which gives the same bits.
    /// </summary>
    public static void ForeachAdd_(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_add_scalar_", List(self, nameof(self)), S(scalar));
    }

    /// <summary><c>torch._foreach_add(self, scalar)</c>: new tensors, owned by the caller.</summary>
    public static Tensor[] ForeachAdd(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_add_scalar", List(self, nameof(self)), S(scalar));
    }

    /// <summary><c>torch._foreach_add_(self, other, alpha=alpha)</c>: <c>self[i] += alpha * other[i]</c>.</summary>
    public static void ForeachAdd_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other, double alpha = 1)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_add_list_", List(self, nameof(self)), List(other, nameof(other)), S(alpha));
    }

    /// <summary><c>torch._foreach_add(self, other, alpha=alpha)</c>: new tensors, owned by the caller.</summary>
    public static Tensor[] ForeachAdd(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other, double alpha = 1)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_add_list", List(self, nameof(self)), List(other, nameof(other)), S(alpha));
    }

    /// <summary>
    /// <c>torch._foreach_sub_(self, other, alpha=alpha)</c>. PyTorch's fused paths undo a skipped step with
    /// <c>_foreach_sub_(state_steps, [found_inf] * n)</c>: pass the same tensor n times.
    /// </summary>
    public static void ForeachSub_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other, double alpha = 1)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_sub_list_", List(self, nameof(self)), List(other, nameof(other)), S(alpha));
    }

    /// <summary><c>torch._foreach_mul_(self, scalar)</c>.</summary>
    public static void ForeachMul_(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_mul_scalar_", List(self, nameof(self)), S(scalar));
    }

    /// <summary><c>torch._foreach_mul(self, scalar)</c>: new tensors, owned by the caller.</summary>
    public static Tensor[] ForeachMul(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_mul_scalar", List(self, nameof(self)), S(scalar));
    }

    /// <summary><c>torch._foreach_mul_(self, scalars)</c> with one double per tensor (a Python float list).</summary>
    public static void ForeachMul_(IReadOnlyList<Tensor> self, IReadOnlyList<double> scalars)
    {
        using var list = ScalarList(self, scalars, nameof(scalars));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_mul_scalarlist_", List(self, nameof(self)), list);
    }

    /// <summary><c>torch._foreach_mul(self, scalars)</c>: new tensors, owned by the caller.</summary>
    public static Tensor[] ForeachMul(IReadOnlyList<Tensor> self, IReadOnlyList<double> scalars)
    {
        using var list = ScalarList(self, scalars, nameof(scalars));
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_mul_scalarlist", List(self, nameof(self)), list);
    }

    /// <summary><c>torch._foreach_mul_(self, other)</c>: <c>self[i] *= other[i]</c>.</summary>
    public static void ForeachMul_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_mul_list_", List(self, nameof(self)), List(other, nameof(other)));
    }

    /// <summary><c>torch._foreach_div_(self, scalar)</c>.</summary>
    public static void ForeachDiv_(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_div_scalar_", List(self, nameof(self)), S(scalar));
    }

    /// <summary><c>torch._foreach_div_(self, scalars)</c> with one double per tensor (Adam's <c>bias_correction2_sqrt</c>).</summary>
    public static void ForeachDiv_(IReadOnlyList<Tensor> self, IReadOnlyList<double> scalars)
    {
        using var list = ScalarList(self, scalars, nameof(scalars));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_div_scalarlist_", List(self, nameof(self)), list);
    }

    /// <summary><c>torch._foreach_neg(self)</c>: new tensors, owned by the caller (maximize never touches the grads).</summary>
    public static Tensor[] ForeachNeg(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_neg", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_neg_(self)</c>.</summary>
    public static void ForeachNeg_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_neg_", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_lerp_(self, end, weight)</c> with a Scalar weight (same bits as <see cref="Lerp_"/> per tensor).</summary>
    public static void ForeachLerp_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> end, double weight)
    {
        SameLength(self, end, nameof(end));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_lerp_scalar_", List(self, nameof(self)), List(end, nameof(end)), S(weight));
    }

    /// <summary><c>torch._foreach_addcmul_(self, tensor1, tensor2, value=value)</c>: <c>self[i] += value * t1[i] * t2[i]</c>.</summary>
    public static void ForeachAddcmul_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> tensor1, IReadOnlyList<Tensor> tensor2, double value = 1)
    {
        SameLength(self, tensor1, nameof(tensor1));
        SameLength(self, tensor2, nameof(tensor2));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_addcmul_scalar_", List(self, nameof(self)), List(tensor1, nameof(tensor1)), List(tensor2, nameof(tensor2)), S(value));
    }

    /// <summary><c>torch._foreach_addcmul(self, tensor1, tensor2, value=value)</c>: new tensors, owned by the caller.</summary>
    public static Tensor[] ForeachAddcmul(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> tensor1, IReadOnlyList<Tensor> tensor2, double value = 1)
    {
        SameLength(self, tensor1, nameof(tensor1));
        SameLength(self, tensor2, nameof(tensor2));
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_addcmul_scalar", List(self, nameof(self)), List(tensor1, nameof(tensor1)), List(tensor2, nameof(tensor2)), S(value));
    }

    /// <summary><c>torch._foreach_addcdiv_(self, tensor1, tensor2, value=value)</c>: <c>self[i] += value * t1[i] / t2[i]</c>.</summary>
    public static void ForeachAddcdiv_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> tensor1, IReadOnlyList<Tensor> tensor2, double value = 1)
    {
        SameLength(self, tensor1, nameof(tensor1));
        SameLength(self, tensor2, nameof(tensor2));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_addcdiv_scalar_", List(self, nameof(self)), List(tensor1, nameof(tensor1)), List(tensor2, nameof(tensor2)), S(value));
    }

    /// <summary><c>torch._foreach_addcdiv_(self, tensor1, tensor2, scalars)</c> with one double per tensor (Adam's <c>step_size</c> list).</summary>
    public static void ForeachAddcdiv_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> tensor1, IReadOnlyList<Tensor> tensor2, IReadOnlyList<double> scalars)
    {
        SameLength(self, tensor1, nameof(tensor1));
        SameLength(self, tensor2, nameof(tensor2));
        using var list = ScalarList(self, scalars, nameof(scalars));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_addcdiv_scalarlist_", List(self, nameof(self)), List(tensor1, nameof(tensor1)), List(tensor2, nameof(tensor2)), list);
    }

    /// <summary><c>torch._foreach_sqrt(self)</c>: new tensors, owned by the caller.</summary>
    public static Tensor[] ForeachSqrt(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_sqrt", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_sqrt_(self)</c>.</summary>
    public static void ForeachSqrt_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_sqrt_", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_maximum_(self, other)</c> (AMSGrad's running max).</summary>
    public static void ForeachMaximum_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_maximum_list_", List(self, nameof(self)), List(other, nameof(other)));
    }

    /// <summary><c>torch._foreach_zero_(self)</c>.</summary>
    public static void ForeachZero_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_zero_", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_copy_(self, src)</c>.</summary>
    public static void ForeachCopy_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> src)
    {
        SameLength(self, src, nameof(src));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_copy_", List(self, nameof(self)), List(src, nameof(src)));
    }

    // ---- Adadelta/Adamax/ASGD ----

    /// <summary><c>torch._foreach_div_(self, other)</c>: <c>self[i] /= other[i]</c> (Adadelta's <c>deltas / std</c>).</summary>
    public static void ForeachDiv_(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_div_list_", List(self, nameof(self)), List(other, nameof(other)));
    }

    /// <summary><c>torch._foreach_sub(self, other, alpha=alpha)</c>: new tensors, owned by the caller (ASGD's <c>param - ax</c>).</summary>
    public static Tensor[] ForeachSub(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other, double alpha = 1)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_sub_list", List(self, nameof(self)), List(other, nameof(other)), S(alpha));
    }

    /// <summary><c>torch._foreach_abs(self)</c>: new tensors, owned by the caller (Adamax's <c>|grad|</c>).</summary>
    public static Tensor[] ForeachAbs(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_abs", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_abs_(self)</c>.</summary>
    public static void ForeachAbs_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_abs_", (object)List(self, nameof(self)));
    }

    // ---- _fused_* kernels. All lists on one device with one dtype (PyTorch groups by (device, dtype) first).
    // None of them increments state_steps: PyTorch's Python does `_foreach_add_(state_steps, 1)` before the call.
    // With found_inf holding 1.0 the CPU kernels return before touching anything; PyTorch then undoes the step
    // increment with `_foreach_sub_(state_steps, [found_inf] * n)` (see ForeachSub_). With grad_scale the kernels
    // divide the gradients by it IN PLACE (the unscaled gradients are written back into `grads`).

    /// <summary>
    /// <c>torch._fused_adam_</c>. <paramref name="maxExpAvgSqs"/> is only read when <paramref name="amsgrad"/> is set
    /// (ATen wants an empty list otherwise; the bridge passes one). <paramref name="gradScale"/> and
    /// <paramref name="foundInf"/> are float32 tensors on the params' device, or null.
    /// </summary>
    internal static void FusedAdam_(IReadOnlyList<Tensor> @params, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> expAvgs,
        IReadOnlyList<Tensor> expAvgSqs, IReadOnlyList<Tensor> maxExpAvgSqs, IReadOnlyList<Tensor> stateSteps,
        double lr, double beta1, double beta2, double weightDecay, double eps, bool amsgrad, bool maximize,
        Tensor? gradScale = null, Tensor? foundInf = null) =>
        FusedAdamLike("fused_adam_", @params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, stateSteps, lr, beta1, beta2, weightDecay, eps,
            amsgrad, maximize, gradScale, foundInf);

    /// <summary><c>torch._fused_adamw_</c> (decoupled weight decay); arguments as <see cref="FusedAdam_"/>.</summary>
    internal static void FusedAdamW_(IReadOnlyList<Tensor> @params, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> expAvgs,
        IReadOnlyList<Tensor> expAvgSqs, IReadOnlyList<Tensor> maxExpAvgSqs, IReadOnlyList<Tensor> stateSteps,
        double lr, double beta1, double beta2, double weightDecay, double eps, bool amsgrad, bool maximize,
        Tensor? gradScale = null, Tensor? foundInf = null) =>
        FusedAdamLike("fused_adamw_", @params, grads, expAvgs, expAvgSqs, maxExpAvgSqs, stateSteps, lr, beta1, beta2, weightDecay, eps,
            amsgrad, maximize, gradScale, foundInf);

    private static void FusedAdamLike(string name, IReadOnlyList<Tensor> @params, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> expAvgs,
        IReadOnlyList<Tensor> expAvgSqs, IReadOnlyList<Tensor> maxExpAvgSqs, IReadOnlyList<Tensor> stateSteps,
        double lr, double beta1, double beta2, double weightDecay, double eps, bool amsgrad, bool maximize,
        Tensor? gradScale, Tensor? foundInf)
    {
        SameLength(@params, grads, nameof(grads));
        SameLength(@params, expAvgs, nameof(expAvgs));
        SameLength(@params, expAvgSqs, nameof(expAvgSqs));
        SameLength(@params, stateSteps, nameof(stateSteps));
        if (amsgrad) SameLength(@params, maxExpAvgSqs, nameof(maxExpAvgSqs));
        if (IsEmpty(@params, nameof(@params))) return;
        RequireContiguous((@params, nameof(@params)), (grads, nameof(grads)), (expAvgs, nameof(expAvgs)), (expAvgSqs, nameof(expAvgSqs)),
            (amsgrad ? maxExpAvgSqs : Array.Empty<Tensor>(), nameof(maxExpAvgSqs)));
        Invoke(name, List(@params, nameof(@params)), List(grads, nameof(grads)), List(expAvgs, nameof(expAvgs)), List(expAvgSqs, nameof(expAvgSqs)),
            amsgrad ? List(maxExpAvgSqs, nameof(maxExpAvgSqs)) : Array.Empty<Tensor>(), List(stateSteps, nameof(stateSteps)),
            S(lr), S(beta1), S(beta2), S(weightDecay), S(eps), amsgrad, maximize, gradScale, foundInf);
    }

    /// <summary>
    /// <c>torch._fused_sgd_</c>. With <paramref name="momentum"/> == 0 no buffers are used (the bridge passes ATen the
    /// empty list it wants). On the first step PyTorch passes <c>empty_like</c> buffers and
    /// <paramref name="isFirstStep"/> = true: the kernel then writes the (decayed) gradient into them.
    /// </summary>
    internal static void FusedSgd_(IReadOnlyList<Tensor> @params, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> momentumBuffers,
        double weightDecay, double momentum, double lr, double dampening, bool nesterov, bool maximize, bool isFirstStep,
        Tensor? gradScale = null, Tensor? foundInf = null)
    {
        SameLength(@params, grads, nameof(grads));
        var withBuffers = momentum != 0;
        if (withBuffers) SameLength(@params, momentumBuffers, nameof(momentumBuffers));
        if (IsEmpty(@params, nameof(@params))) return;
        RequireContiguous((@params, nameof(@params)), (grads, nameof(grads)),
            (withBuffers ? momentumBuffers : Array.Empty<Tensor>(), nameof(momentumBuffers)));
        Invoke("fused_sgd_", List(@params, nameof(@params)), List(grads, nameof(grads)), withBuffers ? List(momentumBuffers, nameof(momentumBuffers)) : Array.Empty<Tensor>(),
            S(weightDecay), S(momentum), S(lr), S(dampening), nesterov, maximize, isFirstStep, gradScale, foundInf);
    }

    /// <summary><c>torch._fused_adagrad_</c>; <paramref name="stateSteps"/> must already hold the new step count.</summary>
    internal static void FusedAdagrad_(IReadOnlyList<Tensor> @params, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> stateSums,
        IReadOnlyList<Tensor> stateSteps, double lr, double lrDecay, double weightDecay, double eps, bool maximize,
        Tensor? gradScale = null, Tensor? foundInf = null)
    {
        SameLength(@params, grads, nameof(grads));
        SameLength(@params, stateSums, nameof(stateSums));
        SameLength(@params, stateSteps, nameof(stateSteps));
        if (IsEmpty(@params, nameof(@params))) return;
        RequireContiguous((@params, nameof(@params)), (grads, nameof(grads)), (stateSums, nameof(stateSums)));
        Invoke("fused_adagrad_", List(@params, nameof(@params)), List(grads, nameof(grads)), List(stateSums, nameof(stateSums)), List(stateSteps, nameof(stateSteps)),
            S(lr), S(lrDecay), S(weightDecay), S(eps), maximize, gradScale, foundInf);
    }

    /// <summary>
    /// The CPU fused kernels (libtorch 2.10) walk raw data pointers as if every tensor were dense and contiguous: a
    /// strided param, grad or state tensor is silently read and written in the wrong places (measured: a transposed
    /// param or grad gives a wrong update, no error). Refuse such tensors here; callers pass contiguous ones.
    /// </summary>
    private static void RequireContiguous(params (IReadOnlyList<Tensor> List, string Name)[] lists)
    {
        foreach (var (list, name) in lists)
        {
            for (var i = 0; i < list.Count; i++)
            {
                if (!list[i].is_contiguous())
                    throw new ArgumentException($"Fused kernels need contiguous tensors; {name}[{i}] is not.", name);
            }
        }
    }

    // ---- NAdam/RAdam/Rprop ----

    /// <summary><c>torch._foreach_add_(self, scalars)</c> with one double per tensor (RAdam's <c>unrect_step_size</c> list).</summary>
    public static void ForeachAdd_(IReadOnlyList<Tensor> self, IReadOnlyList<double> scalars)
    {
        using var list = ScalarList(self, scalars, nameof(scalars));
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_add_scalarlist_", List(self, nameof(self)), list);
    }

    /// <summary><c>torch._foreach_mul(self, other)</c>: <c>self[i] * other[i]</c> as new tensors, owned by the caller (Rprop's signs).</summary>
    public static Tensor[] ForeachMul(IReadOnlyList<Tensor> self, IReadOnlyList<Tensor> other)
    {
        SameLength(self, other, nameof(other));
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_mul_list", List(self, nameof(self)), List(other, nameof(other)));
    }

    /// <summary><c>torch._foreach_reciprocal_(self)</c>.</summary>
    public static void ForeachReciprocal_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_reciprocal_", (object)List(self, nameof(self)));
    }

    /// <summary><c>torch._foreach_sign_(self)</c>.</summary>
    public static void ForeachSign_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_sign_", (object)List(self, nameof(self)));
    }

    /// <summary>
    /// Counts an in-place change of every tensor of <paramref name="self"/> in autograd's version counter,
    /// as an ATen in-place op does, without touching an element: for kernels that write tensors' memory directly, so
    /// that a backward through a graph that saved one of them before the change refuses, as PyTorch's does.
    /// </summary>
    internal static void MarkModified_(IReadOnlyList<Tensor> self)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("mark_modified_", (object)List(self, nameof(self)));
    }
    /// <summary>
    /// <c>self._values()</c> of a sparse COO tensor: its values as stored (uncoalesced ones keep repeated indices'
    /// values apart), a view owned by the caller.
    /// </summary>
    internal static Tensor SparseValues(Tensor self) => InvokeTensor("sparse_values", self);

    /// <summary><c>torch.addmm(self, mat1, mat2, beta=beta, alpha=alpha)</c> with double Scalars: a new tensor owned by the caller.</summary>
    internal static Tensor Addmm(Tensor self, Tensor mat1, Tensor mat2, double beta, double alpha) =>
        InvokeTensor("addmm", self, mat1, mat2, S(beta), S(alpha));

    /// <summary>
    /// <c>torch.linalg.vector_norm(self, ord, dim, keepdim)</c> over every element (<paramref name="dim"/> null) or one
    /// dimension: a new tensor owned by the caller. TorchSharp's own overload makes its <c>ord</c> Scalar inside, where
    /// nothing keeps it alive through the native call (see <see cref="Scalars"/>).
    /// </summary>
    internal static Tensor VectorNorm(Tensor self, double ord, int? dim = null, bool keepdim = false) =>
        dim is { } d ? InvokeTensor("vector_norm_dim", self, S(ord), d, keepdim) : InvokeTensor("vector_norm", self, S(ord), keepdim);

    /// <summary>Runs a script function that returns a Tensor; the result belongs to the caller.</summary>
    private static Tensor InvokeTensor(string name, params object?[] args)
    {
        using var _ = no_grad();
        try
        {
            return (Tensor)Unit.Value.invoke(name, args!);
        }
        finally
        {
            DisposeScalars(args);
        }
    }

    /// <summary>
    /// PyTorch's <c>torch.optim._functional.sparse_adam</c> for one parameter, from the negation for maximize through
    /// <c>param.add_(make_sparse(-step_size * numer.div_(denom)))</c>, op for op (<c>grad.new(indices, values, size)</c>
    /// is <c>torch.sparse_coo_tensor(indices, values, size)</c>); nothing changes for a gradient without values. The
    /// scalars are the Python floats PyTorch computes: <c>1 - beta1</c>, <c>1 - beta2</c>, <c>eps</c> and
    /// <c>lr * math.sqrt(bias_correction2) / bias_correction1</c>.
    /// </summary>
    internal static void SparseAdam_(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, bool maximize, double oneMinusBeta1,
        double oneMinusBeta2, double eps, double stepSize) =>
        Invoke("sparse_adam_", param, grad, expAvg, expAvgSq, maximize, S(oneMinusBeta1), S(oneMinusBeta2), S(eps), S(stepSize));

    #region Mixed precision and gradient clipping (Optim.Amp.GradScaler, Optim.Utils.ClipGrad)

    // Compiled into the same unit as Script (see Compile). Same conventions: `_` names mutate and return None.
    // growth_interval travels as a float (an exact small integer) and is turned back into an int in the script.
    private const string AmpScript = """
        def amp_foreach_non_finite_check_and_unscale_(self: List[Tensor], found_inf: Tensor, inv_scale: Tensor):
            torch._amp_foreach_non_finite_check_and_unscale_(self, found_inf, inv_scale)

        def amp_update_scale_(self: Tensor, growth_tracker: Tensor, found_inf: Tensor, growth_factor: float,
                              backoff_factor: float, growth_interval: float):
            torch._amp_update_scale_(self, growth_tracker, found_inf, growth_factor, backoff_factor, int(growth_interval))

        def foreach_norm(self: List[Tensor], ord: float) -> List[Tensor]:
            return torch._foreach_norm(self, ord)

        def foreach_mul_tensor_(self: List[Tensor], other: Tensor):
            torch._foreach_mul_(self, other)

        def foreach_clamp_min_scalar_(self: List[Tensor], scalar: float):
            torch._foreach_clamp_min_(self, scalar)

        def foreach_clamp_max_scalar_(self: List[Tensor], scalar: float):
            torch._foreach_clamp_max_(self, scalar)
        """;

    /// <summary>
    /// <c>torch._amp_foreach_non_finite_check_and_unscale_(self, found_inf, inv_scale)</c>: multiplies every tensor by
    /// <paramref name="invScale"/> in place and sets <paramref name="foundInf"/> to 1.0 if any element of any tensor is
    /// NaN or infinite (it never resets it to 0). All tensors on one device; <paramref name="foundInf"/> and
    /// <paramref name="invScale"/> are one-element float32 tensors on that device.
    /// </summary>
    internal static void AmpForeachNonFiniteCheckAndUnscale_(IReadOnlyList<Tensor> self, Tensor foundInf, Tensor invScale)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("amp_foreach_non_finite_check_and_unscale_", List(self, nameof(self)), foundInf, invScale);
    }

    /// <summary>
    /// <c>torch._amp_update_scale_(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval)</c>:
    /// if <paramref name="foundInf"/> is non-zero, multiplies <paramref name="scale"/> by the backoff factor and resets the
    /// tracker; otherwise counts a clean step and, after <paramref name="growthInterval"/> of them, multiplies the scale by
    /// the growth factor and resets the tracker. <paramref name="scale"/> and <paramref name="foundInf"/> are one-element
    /// float32 tensors, <paramref name="growthTracker"/> an int32 one, all on one device.
    /// </summary>
    internal static void AmpUpdateScale_(Tensor scale, Tensor growthTracker, Tensor foundInf, double growthFactor, double backoffFactor, int growthInterval) =>
        Invoke("amp_update_scale_", scale, growthTracker, foundInf, S(growthFactor), S(backoffFactor), S(growthInterval));

    /// <summary><c>torch._foreach_norm(self, ord)</c>: each tensor's vector norm as a 0-dim tensor, owned by the caller.</summary>
    public static Tensor[] ForeachNorm(IReadOnlyList<Tensor> self, double ord)
    {
        if (IsEmpty(self, nameof(self))) return Array.Empty<Tensor>();
        return InvokeList("foreach_norm", List(self, nameof(self)), S(ord));
    }

    /// <summary><c>torch._foreach_mul_(self, other)</c> with one tensor <paramref name="other"/> (0-dim) for every tensor.</summary>
    public static void ForeachMulTensor_(IReadOnlyList<Tensor> self, Tensor other)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_mul_tensor_", List(self, nameof(self)), other);
    }

    /// <summary><c>torch._foreach_clamp_min_(self, scalar)</c>.</summary>
    public static void ForeachClampMin_(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_clamp_min_scalar_", List(self, nameof(self)), S(scalar));
    }

    /// <summary><c>torch._foreach_clamp_max_(self, scalar)</c>.</summary>
    public static void ForeachClampMax_(IReadOnlyList<Tensor> self, double scalar)
    {
        if (IsEmpty(self, nameof(self))) return;
        Invoke("foreach_clamp_max_scalar_", List(self, nameof(self)), S(scalar));
    }

    #endregion
}

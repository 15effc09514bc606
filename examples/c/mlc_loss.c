/* Computes the MLC loss of CPP (rate reduction) and its gradients through the C API, on a small deterministic
 * input, and checks them: the float64 gradient against central finite differences computed here, the float32
 * result against the float64 one, and two error paths (NULL input, zero size, bad parameter, NaN). Exits non-zero on any failure.
 * Build:
 *   cc -Iinclude examples/c/mlc_loss.c -Ltarget/release -lrateclust -lm -o mlc_loss */
#include <rateclust.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define M 6
#define D 4

/* Deterministic rows, L2-normalised (the heads of CPP normalise Z and C the same way). */
static void fill(double *x, double phase) {
    for (int i = 0; i < M; i++) {
        double norm = 0.0;
        for (int k = 0; k < D; k++) {
            x[i * D + k] = sin(phase + 1.3 * i + 0.7 * k * k) + 0.2 * k;
            norm += x[i * D + k] * x[i * D + k];
        }
        for (int k = 0; k < D; k++) x[i * D + k] /= sqrt(norm);
    }
}

static double loss_f64(const rateclust_rate_params *p, const double *z, const double *c) {
    rateclust_mlc_values v;
    if (rateclust_mlc_loss_f64(p, RATECLUST_DEVICE_KIND_CPU, 0, z, c, M, D, RATECLUST_OBJECTIVE_MLC, &v, NULL, NULL) !=
        RATECLUST_STATUS_OK) {
        fprintf(stderr, "loss failed: %s\n", rateclust_last_error());
        return NAN;
    }
    return v.loss;
}

int main(void) {
    double z[M * D], c[M * D], gz[M * D], gc[M * D];
    fill(z, 0.0);
    fill(c, 0.5);

    /* The exact Sinkhorn gradient is the true derivative of the loss, so finite differences must match it. */
    rateclust_rate_params p = rateclust_rate_default_params();
    p.sinkhorn_gradient = RATECLUST_SINKHORN_GRADIENT_EXACT;
    rateclust_mlc_values v;
    if (rateclust_mlc_loss_f64(&p, RATECLUST_DEVICE_KIND_AUTO, 0, z, c, M, D, RATECLUST_OBJECTIVE_MLC, &v, gz, gc) !=
        RATECLUST_STATUS_OK) {
        fprintf(stderr, "rateclust_mlc_loss_f64: %s\n", rateclust_last_error());
        return 1;
    }
    printf("loss %.10f = -R + R_c + penalty with R = %.10f, R_c = %.10f, penalty = %.10f\n", v.loss, v.rate, v.rate_c,
           v.pi_penalty);

    double worst = 0.0, h = 1e-6;
    for (int which = 0; which < 2; which++) {
        double *x = which == 0 ? z : c;
        const double *g = which == 0 ? gz : gc;
        for (int i = 0; i < M * D; i++) {
            double keep = x[i];
            x[i] = keep + h;
            double up = loss_f64(&p, z, c);
            x[i] = keep - h;
            double down = loss_f64(&p, z, c);
            x[i] = keep;
            double fd = (up - down) / (2 * h);
            double err = fabs(fd - g[i]) / (1.0 + fabs(g[i]));
            if (err > worst) worst = err;
        }
    }
    printf("max |finite difference - gradient| (relative): %.3e\n", worst);
    if (!(worst < 1e-6)) {
        fprintf(stderr, "gradient does not match finite differences\n");
        return 1;
    }

    /* float32 with the default (reference) parameters, against float64 with the same parameters. */
    float z32[M * D], c32[M * D], gz32[M * D], gc32[M * D];
    for (int i = 0; i < M * D; i++) {
        z32[i] = (float)z[i];
        c32[i] = (float)c[i];
    }
    rateclust_mlc_values v32;
    if (rateclust_mlc_loss(NULL, RATECLUST_DEVICE_KIND_CPU, 0, z32, c32, M, D, RATECLUST_OBJECTIVE_MLC, &v32, gz32,
                           gc32) != RATECLUST_STATUS_OK ||
        rateclust_mlc_loss_f64(NULL, RATECLUST_DEVICE_KIND_CPU, 0, z, c, M, D, RATECLUST_OBJECTIVE_MLC, &v, gz, gc) !=
            RATECLUST_STATUS_OK) {
        fprintf(stderr, "default-parameter call failed: %s\n", rateclust_last_error());
        return 1;
    }
    double gmax = 0.0, dmax = 0.0;
    for (int i = 0; i < M * D; i++) {
        gmax = fmax(gmax, fmax(fabs(gz[i]), fabs(gc[i])));
        dmax = fmax(dmax, fmax(fabs(gz[i] - gz32[i]), fabs(gc[i] - gc32[i])));
    }
    printf("float32 loss %.6f, float64 loss %.6f, max gradient difference %.3e (of max %.3f)\n", v32.loss, v.loss,
           dmax, gmax);
    if (fabs(v32.loss - v.loss) > 1e-4 * (1 + fabs(v.loss)) || dmax > 1e-4 * gmax) return 1;

    /* Error paths: a NULL input and a zero size must come back as INVALID_ARGUMENT with a message. */
    rateclust_status st = rateclust_mlc_loss(NULL, RATECLUST_DEVICE_KIND_CPU, 0, NULL, c32, M, D,
                                             RATECLUST_OBJECTIVE_MLC, &v32, NULL, NULL);
    printf("NULL z -> status %d: %s\n", (int)st, rateclust_last_error());
    if (st != RATECLUST_STATUS_INVALID_ARGUMENT || strstr(rateclust_last_error(), "`z` is NULL") == NULL) return 1;
    st = rateclust_mlc_loss(NULL, RATECLUST_DEVICE_KIND_CPU, 0, z32, c32, M, 0, RATECLUST_OBJECTIVE_MLC, &v32, NULL,
                            NULL);
    printf("d = 0 -> status %d: %s\n", (int)st, rateclust_last_error());
    if (st != RATECLUST_STATUS_INVALID_ARGUMENT) return 1;
    rateclust_rate_params bad = rateclust_rate_default_params();
    bad.sinkhorn_gradient = (rateclust_sinkhorn_gradient)7;
    st = rateclust_mlc_loss(&bad, RATECLUST_DEVICE_KIND_CPU, 0, z32, c32, M, D, RATECLUST_OBJECTIVE_MLC, &v32, NULL,
                            NULL);
    printf("sinkhorn_gradient = 7 -> status %d: %s\n", (int)st, rateclust_last_error());
    if (st != RATECLUST_STATUS_INVALID_ARGUMENT) return 1;
    z32[5] = NAN;
    st = rateclust_mlc_loss(NULL, RATECLUST_DEVICE_KIND_CPU, 0, z32, c32, M, D, RATECLUST_OBJECTIVE_TCR, &v32, NULL,
                            NULL);
    printf("NaN in z -> status %d: %s\n", (int)st, rateclust_last_error());
    if (st != RATECLUST_STATUS_NON_FINITE) return 1;
    printf("ok\n");
    return 0;
}

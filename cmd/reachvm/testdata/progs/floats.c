// floats: printf's and strtod's floating-point conversions (glibc's
// multi-precision formatting, long double on the x87), and libm.
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
	const double v[] = {0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 2.5e-310, DBL_MAX, DBL_MIN, 123456789.125, -9.87654321e-5};
	for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++)
		printf("%f %.17g %e %a %g\n", v[i], v[i], v[i], v[i], v[i]);
	printf("%f %f %f\n", INFINITY, -INFINITY, NAN);
	long double ld = 1.0L / 3.0L;
	printf("%.21Lf %La %Lg\n", ld, ld, ld * 1e300L * 1e300L);
	float f = 16777217.0f;
	printf("%.9g %.9g\n", f, (double)(float)0.1);
	const char *s[] = {"3.14159265358979323846", "1e-320", "0x1.8p3", "-inf", "nan", "4.9e-324", "1.7976931348623157e308"};
	for (unsigned i = 0; i < sizeof s / sizeof s[0]; i++)
		printf("strtod(%s) = %.17g\n", s[i], strtod(s[i], NULL));
	// libm: printed to 12 digits, within any implementation's last bit.
	double sum = 0;
	for (int i = 1; i <= 1000; i++)
		sum += sin(i) * exp(-i / 500.0) + sqrt(i) + log(i) + pow(i, 0.3) + atan2(i, 7);
	printf("libm %.12g %.12g %.12g\n", sum, cbrt(2.0), tgamma(4.5));
	char buf[64];
	snprintf(buf, sizeof buf, "%.2f %.0f %.0f %.3e", 2.675, 0.5, 1.5, 9.9995e10);
	puts(buf);
	return 0;
}

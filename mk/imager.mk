# imager application: what tests/it_imager.sh needs built (the sanitizer
# builds of the imager and presign functions, the sample-photo generator and
# the image checker).
$(B)/imager/bootstrap-san: $(B)/assets/stamp_png.h

check-build: $(B)/imager/bootstrap-san $(B)/presign/bootstrap-san $(B)/tools/mksamples $(B)/tools/imgcheck

# The imager keeps WebP as WebP and GIF as GIF (SPIM_WEBP, SPIM_GIF).
$(B)/imager/bootstrap $(B)/imager/bootstrap-san: PKG_LIBS += $(FMT_LIBS)

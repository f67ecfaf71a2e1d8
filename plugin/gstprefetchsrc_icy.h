/* iradio-mode's output, as souphttpsrc gives it: an Icecast answer with
 * icy-metaint makes the caps application/x-icy (icydemux downstream strips
 * the interleaved metadata), and its icy-name, icy-genre and icy-url become
 * tags. */
#pragma once

#include <gst/base/gstbasesrc.h>

#include "prefetch/origin.h"

/* Sets the caps and pushes a tag event for `icy`, if it says anything. From
 * the streaming thread (create()), before the first buffer, with no lock
 * held. */
void gst_prefetch_src_announce_icy(GstBaseSrc* src, const prefetch::IcyInfo& icy);

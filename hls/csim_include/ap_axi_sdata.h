// KCNN's own stand-in for Vitis HLS's ap_axi_sdata.h, which the open-source ap_types lack.
// Only the g++ C-sim build puts this folder on its include path (-isystem); Vitis HLS uses
// its own header, so this file never reaches synthesis.
#ifndef KCNN_CSIM_AP_AXI_SDATA_H_
#define KCNN_CSIM_AP_AXI_SDATA_H_

#include "ap_int.h"

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<U> user;
    ap_uint<1> last;
    ap_uint<TI> id;
    ap_uint<TD> dest;
};

// ap_uint<0> does not exist, so the side-channel-free form needs its own definition.
template <int D>
struct ap_axiu<D, 0, 0, 0> {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};

template <int D, int U, int TI, int TD>
struct ap_axis {
    ap_int<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<U> user;
    ap_uint<1> last;
    ap_uint<TI> id;
    ap_uint<TD> dest;
};

template <int D>
struct ap_axis<D, 0, 0, 0> {
    ap_int<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};

#endif  // KCNN_CSIM_AP_AXI_SDATA_H_

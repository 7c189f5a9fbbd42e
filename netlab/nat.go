package netlab

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// mappingTimeout is how long a cone mapping outlives the last outbound packet
// that used it: two minutes, the least RFC 4787 (REQ-5) allows.
const mappingTimeout = 2 * time.Minute

// nftables registers: 1 is the first 16-byte register, 8 and up name its
// 4-byte words, as the nft tool numbers them. A concatenated key is laid out
// one 4-byte word per field from register 1 on; map data goes from word 12.
const (
	reg1    = 1
	regWord = 8 // word n of the register file is regWord+n
	regData = regWord + 4
)

// Conntrack constants from linux/netfilter/nf_conntrack_common.h. The kernel
// reads NFTA_CT_DIRECTION as one byte, the first of the attribute, while
// google/nftables v0.3.0 writes it as a big-endian uint32: the reply
// direction (1) must be passed as 1<<24 to land in that first byte.
const (
	ctDirOriginal = 0
	ctDirReply    = 1 << 24
	ipsDstNAT     = 1 << 5 // IPS_DST_NAT: the connection was destination-NATed
)

// installNAT writes the router's ruleset into its namespace: one table, "ip
// netlab", through netlink (no nft binary).
//
//	postrouting (nat, srcnat):   oif wan0 masquerade [fully-random: symmetric]
//	input, forward (filter):     iif wan0 ct state established,related accept
//	                             iif wan0 ct status dnat accept     (forward; cone types)
//	                             iif wan0 drop
//	record (filter, after srcnat, cone types):
//	                             oif wan0 ct direction original
//	                             update @cone { key : ct original saddr . ct original proto-src }
//	prerouting (nat, dstnat, cone types):
//	                             iif wan0 dnat to <key> map @cone
//
// The key of @cone is proto . public port for full cone and proto . remote
// address . public port for restricted cone: an inbound packet that finds its
// key goes to the host and port that made the mapping.
func installNAT(ns *Namespace, nat NAT) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.fd)))
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "netlab"})
	accept := nftables.ChainPolicyAccept

	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	masq := &expr.Masq{}
	if nat == NATSymmetric {
		// A fresh random port for every connection, that is for every
		// destination address and port: endpoint-dependent mapping.
		masq.FullyRandom = true
	}
	// Without random flags Linux keeps the source port whenever the
	// resulting tuple is unique, so one socket keeps its port towards every
	// destination: endpoint-independent mapping.
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(oif(wanIf), []expr.Any{masq})})

	cone := nat == NATFullCone || nat == NATRestricted
	for _, hook := range []struct {
		name string
		num  *nftables.ChainHook
	}{{"input", nftables.ChainHookInput}, {"forward", nftables.ChainHookForward}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook.num, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(iif(wanIf),
			ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accepted())})
		if cone && hook.name == "forward" {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(iif(wanIf),
				ctBits(expr.CtKeySTATUS, ipsDstNAT), accepted())})
		}
		// Silently: a reset or an ICMP error would end a hole punch.
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(iif(wanIf), []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
	}

	if cone {
		if err := addConeMapping(c, t, nat == NATRestricted); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%v NAT: %w", nat, err)
	}
	return nil
}

// addConeMapping adds the cone types' mapping: the @cone map, the record
// chain that fills it from outbound packets and the prerouting chain that
// sends inbound packets to the host and port that made the mapping.
func addConeMapping(c *nftables.Conn, t *nftables.Table, restricted bool) error {
	accept := nftables.ChainPolicyAccept
	keyType := nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	if restricted {
		keyType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeIPAddr, nftables.TypeInetService)
	}
	m := &nftables.Set{
		Table:      t,
		Name:       "cone",
		IsMap:      true,
		Dynamic:    true,
		HasTimeout: true,
		Timeout:    mappingTimeout,
		// Field lengths of the key, which `nft list ruleset` needs.
		Concatenation: true,
		KeyType:       keyType,
		DataType:      nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
	}
	if err := c.AddSet(m, nil); err != nil {
		return err
	}
	record := c.AddChain(&nftables.Chain{Name: "record", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(200), Policy: &accept})
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		// Outbound, after masquerade has chosen the public port: remember
		// who owns it. The reply tuple's destination port is that port.
		key := []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}}
		next := uint32(regWord + 1)
		if restricted {
			key = append(key, &expr.Payload{DestRegister: next, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}) // ip daddr
			next++
		}
		key = append(key, &expr.Ct{Key: expr.CtKeyPROTODST, Direction: ctDirReply, Register: next})
		c.AddRule(&nftables.Rule{Table: t, Chain: record, Exprs: cat(
			oif(wanIf),
			[]expr.Any{
				&expr.Ct{Key: expr.CtKeyDIRECTION, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{ctDirOriginal}},
			},
			l4(proto),
			key,
			[]expr.Any{
				&expr.Ct{Key: expr.CtKeySRC, Direction: ctDirOriginal, Register: regData},
				&expr.Ct{Key: expr.CtKeyPROTOSRC, Direction: ctDirOriginal, Register: regData + 1},
				&expr.Dynset{SrcRegKey: reg1, SrcRegData: regData, SetName: m.Name, SetID: m.ID,
					Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: mappingTimeout},
			},
		)})

		// Inbound, new connections only (nat chains see nothing else):
		// send a packet whose key is mapped to the owner.
		key = []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}}
		next = regWord + 1
		if restricted {
			key = append(key, &expr.Payload{DestRegister: next, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}) // ip saddr
			next++
		}
		key = append(key, &expr.Payload{DestRegister: next, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}) // th dport
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: cat(
			iif(wanIf),
			l4(proto),
			key,
			[]expr.Any{
				&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
					RegAddrMin: reg1, RegProtoMin: regWord + 1, Specified: true},
			},
		)})
	}
	return nil
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ifname pads an interface name as the kernel compares it.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func iif(n string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ifname(n)},
	}
}

func oif(n string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ifname(n)},
	}
}

func l4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
	}
}

// ctBits matches when any of bits is set in the conntrack field key (state
// or status).
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: key, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func accepted() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }
